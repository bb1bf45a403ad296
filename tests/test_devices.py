import json

import pytest

from edgelaw.core import devices
from edgelaw.core.errors import EdgelawError

LINUX_X86 = {"system": "Linux", "machine": "x86_64", "cpu": "Intel Xeon", "board": "", "cores_physical": 2}
MAC_M2 = {"system": "Darwin", "machine": "arm64", "cpu": "Apple M2", "board": "", "cores_physical": 8}
PI5 = {"system": "Linux", "machine": "aarch64", "cpu": "", "board": "Raspberry Pi 5 Model B Rev 1.0", "cores_physical": 4}


@pytest.mark.parametrize("host,fit", [(LINUX_X86, "x86"), (MAC_M2, "m2"), (PI5, "rpi5")])
def test_suggest_finds_the_fitting_profile(root, host, fit):
    assert devices.suggest(host, root) == fit
    assert devices.resolve(fit, root, host=host)["host_matches"]


def test_mismatch_stops_with_the_fitting_profile_and_the_override(root):
    with pytest.raises(EdgelawError) as err:
        devices.resolve("m2", root, host=LINUX_X86)
    msg = str(err.value)
    assert "system is Linux, profile expects Darwin" in msg
    assert "--config device=x86" in msg and "force_device=true" in msg


def test_force_runs_a_mismatched_profile_and_says_so(root):
    profile = devices.resolve("rpi5", root, force=True, host=LINUX_X86)
    assert profile["host_matches"] is False and profile["threads"] == 4


@pytest.mark.parametrize("host", [LINUX_X86, MAC_M2, PI5])
def test_auto_never_stops_and_uses_physical_cores(root, host):
    profile = devices.resolve("auto", root, host=host)
    assert profile["threads"] == host["cores_physical"]


def test_unknown_profile_lists_the_known_ones(root):
    with pytest.raises(EdgelawError, match="use one of auto, m2, rpi5, x86"):
        devices.resolve("pi4", root, host=LINUX_X86)


def test_every_shipped_profile_is_valid(root):
    for name in devices.available(root):
        assert devices.load_profile(name, root)["power"]["sources"]


def test_fingerprint_of_this_host():
    host = devices.fingerprint()
    assert host["cores_logical"] >= 1 and host["memory_bytes"] > 0 and host["system"]


def test_the_job_check_resolves_the_profile_as_written_on_its_host(root):
    """A measurement job gets the profile as written (threads: auto) and resolves it where it runs."""
    x86 = devices.load_profile("x86", root)
    assert x86["threads"] == "auto"
    profile = devices.check_device_host("x86", x86, False, host=LINUX_X86)
    assert profile["threads"] == 2 and profile["host_matches"]
    with pytest.raises(EdgelawError, match="device profile 'x86' does not match this host: system is Darwin"):
        devices.check_device_host("x86", x86, False, host=MAC_M2)


def test_the_job_check_refuses_a_host_unlike_the_devices_earlier_jobs(root, tmp_path):
    record = tmp_path / "host.json"
    earlier = {**LINUX_X86, "cores_logical": 2, "memory_bytes": 8 * 2**30, "host_id": "a"}
    record.write_text(json.dumps({"host": earlier}))
    x86 = devices.load_profile("x86", root)
    # Another node of the same kind (another name, a little less memory) measures for the device.
    same = {**earlier, "host_id": "b", "memory_bytes": int(7.9 * 2**30)}
    assert devices.check_device_host("x86", x86, False, str(record), host=same)["host_matches"]
    other = {**earlier, "cpu": "AMD EPYC", "cores_logical": 64, "cores_physical": 32}
    with pytest.raises(EdgelawError) as err:
        devices.check_device_host("x86", x86, False, str(record), host=other)
    msg = str(err.value)
    assert "device 'x86': this host" in msg and "cpu is 'AMD EPYC', earlier 'Intel Xeon'" in msg
    assert "cores_physical is 32, earlier 2" in msg and "force_device=true" in msg
    assert devices.check_device_host("x86", x86, True, str(record), host=other)["threads"] == 32
