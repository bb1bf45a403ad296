"""Commands of the measurement stage: the host record and one bench job."""

from __future__ import annotations

import json

from edgelaw.core.console import json_arg, say


def _device_args(p) -> None:
    p.add_argument("--device", required=True)
    p.add_argument("--profile", required=True, type=json_arg,
                   help="the device profile as JSON; checked against the host the job runs on (threads: auto resolved)")
    p.add_argument("--force-device", action="store_true",
                   help="measure on a host the profile (or the device's earlier host record) does not match "
                        "(also when EDGELAW_FORCE_DEVICE=1, which the workflow sets from force_device)")


def _threads(text: str) -> int | str:
    return text if text == "auto" else int(text)


def _checked_profile(a, host_record: str | None = None) -> tuple[dict, int]:
    """The device check, where the measurement runs: the resolved profile and the inference threads."""
    import os

    from edgelaw.core.devices import FORCE_ENV, check_device_host

    force = a.force_device or os.environ.get(FORCE_ENV) == "1"
    profile = check_device_host(a.device, a.profile, force, host_record)
    return profile, profile["threads"] if a.threads == "auto" else a.threads


def args_host_record(p) -> None:
    _device_args(p)
    p.add_argument("--settings", required=True, type=json_arg, help="the config's bench section as JSON")
    p.add_argument("--threads", type=_threads, required=True,
                   help="threads of the bandwidth copy (the inference threads; auto: the profile's)")
    p.add_argument("--out", required=True)


def cmd_host_record(a) -> None:
    from edgelaw.core.atomic import write_json
    from edgelaw.measure.host import host_record

    profile, threads = _checked_profile(a)
    record = host_record(a.device, profile, a.settings["idle_seconds"], a.settings["sample_hz"], threads,
                         a.settings["disturbance"])
    write_json(a.out, record)
    idle = record["idle_baseline"]
    say(f"device {a.device}: power source {record['power_source']}, idle {idle['cpu_sys_pct']:.1f}% CPU, "
        f"{idle['power_w']:.2f} W; memory copy bandwidth {record['memory_bandwidth']['copy_gb_s']:.1f} GB/s")


def args_bench(p) -> None:
    _device_args(p)
    p.add_argument("--host-record", help="the device's host record: this host must be the kind of host it describes")
    p.add_argument("--model", required=True)
    p.add_argument("--quant", required=True)
    p.add_argument("--gguf", required=True)
    p.add_argument("--quant-json", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--settings", required=True, type=json_arg, help="the bench settings this workload reads, as JSON")
    p.add_argument("--threads", type=_threads, required=True, help="inference threads (auto: the profile's)")
    p.add_argument("--out-trace", required=True)
    p.add_argument("--out-runs", required=True)
    p.add_argument("--mmproj", help="the model's vision projector (resolution workload)")
    p.add_argument("--clamp", type=json_arg, required=True,
                   help='{"image_max_tokens": N, "image_min_tokens": N} as JSON ({} for the token sweep)')


def cmd_bench(a) -> None:
    from edgelaw.core.integrity import check_recorded
    from edgelaw.core.provenance import record
    from edgelaw.measure.controller import measure
    from edgelaw.measure.settings import Settings

    profile, threads = _checked_profile(a, a.host_record)
    settings = Settings.from_config(a.settings, a.workload)
    quant_meta = json.loads(open(a.quant_json).read())
    sha = check_recorded(a.gguf, a.quant_json, f"model {a.model}, scheme {a.quant}")
    prov = record({"bench": a.settings, "scheme": quant_meta.get("params"), "device": profile, "threads": threads,
                   "clamp": a.clamp}, gguf_sha256=sha)
    measure(device=a.device, profile=profile, model=a.model, quant=a.quant, gguf=a.gguf, quant_meta=quant_meta,
            workload=a.workload, settings=settings, threads=threads, out_trace=a.out_trace, out_runs=a.out_runs,
            provenance=prov, mmproj=a.mmproj, clamp=a.clamp)
