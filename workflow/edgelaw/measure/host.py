"""The host record: what a device's results were measured on, written once per device (host.json)."""

from __future__ import annotations

import time

from edgelaw.core.hostlock import measurement_lock
from edgelaw.measure.accounting import idle_baseline
from edgelaw.measure.disturbance import DisturbanceSettings, ProcessCensus, quiet_idle_window
from edgelaw.measure.sampler import rates, sampling


def host_record(device: str, *args) -> dict:
    """The record (arguments of `_host_record`), measured while holding the host's measurement lock: its
    idle baseline and bandwidth copy are measurements, with no other one on the host beside them."""
    with measurement_lock(f"host-record {device}"):
        return _host_record(device, *args)


def _host_record(device: str, profile: dict, idle_seconds: float, sample_hz: float, threads: int,
                 disturbance: dict) -> dict:
    """This host's fingerprint, power source, idle baseline (taken again until the host is quiet) and
    memory bandwidth, for results/{device}/host.json."""
    from edgelaw.core.devices import fingerprint
    from edgelaw.core.llama import build_info
    from edgelaw.measure.bandwidth import copy_bandwidth

    with sampling(profile, sample_hz) as (sampler, source):
        *window, background = quiet_idle_window(sampler, source.kind, idle_seconds,
                                                 DisturbanceSettings.from_config(disturbance), ProcessCensus(),
                                                 f"device {device}")
    df = rates(sampler.frame(), sampler.n_cpus)
    return {
        "device": device,
        "profile": profile,
        "host": fingerprint(),
        "llama_cpp": build_info(),
        "cpu_only": True,
        "power_source": source.name,
        "power_sources_tried": profile["power"]["sources"],
        "idle_baseline": {**idle_baseline(df, *window, source.kind == "counter"), "other_cores": background},
        "memory_bandwidth": copy_bandwidth(threads),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
