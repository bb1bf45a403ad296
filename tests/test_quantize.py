import json

import pytest

from edgelaw.core.errors import EdgelawError
from edgelaw.quantize.ptq import quantize


def run(tmp_path, tiny_gguf, name, scheme):
    out = tmp_path / f"{name}.gguf"
    return quantize("tiny", name, scheme, str(tiny_gguf), str(out), str(tmp_path / f"{name}.json"), 2), out


def test_bpw_falls_along_the_ladder(tmp_path, tiny_gguf):
    ladder = ["F16", "Q8_0", "Q6_K", "Q4_K_M", "Q3_K_M", "Q2_K"]
    bpw = [run(tmp_path, tiny_gguf, n, {"ftype": n})[0]["bpw"] for n in ladder]
    assert bpw == sorted(bpw, reverse=True)
    assert 15.9 < bpw[0] < 16.1 and 8.4 < bpw[1] < 8.6 and bpw[-1] < 3.8


def test_record_describes_the_output(tmp_path, tiny_gguf):
    record, out = run(tmp_path, tiny_gguf, "Q8_0", {"ftype": "Q8_0"})
    on_disk = json.loads((tmp_path / "Q8_0.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert record["weight_bytes"] * 8 / record["n_params"] == pytest.approx(record["bpw"])
    assert set(record["tensor_types"]) == {"Q8_0", "F32"}
    assert record["llama_cpp"]["llama_cpp_python"] and record["seconds"] >= 0
    assert len(record["sha256"]) == 64 and out.stat().st_size == record["file_bytes"]


def test_per_tensor_overrides_and_output_type(tmp_path, tiny_gguf):
    scheme = {"ftype": "Q4_K_M", "tensor_types": {r"attn_v\.weight": "Q8_0"}, "output_tensor_type": "F16"}
    record, _ = run(tmp_path, tiny_gguf, "custom", scheme)
    plain, _ = run(tmp_path, tiny_gguf, "plain", {"ftype": "Q4_K_M"})
    assert record["tensor_types"]["F16"]["tensors"] == 1  # output.weight
    assert record["tensor_types"]["Q8_0"]["tensors"] >= 2  # both attn_v
    assert record["bpw"] > plain["bpw"]


def test_pure_keeps_every_matrix_at_the_base_type(tmp_path, tiny_gguf):
    record, _ = run(tmp_path, tiny_gguf, "pure", {"ftype": "Q4_K_M", "pure": True})
    assert set(record["tensor_types"]) == {"Q4_K", "F32"}


def test_scheme_that_needs_an_imatrix_is_refused_by_name(tmp_path, tiny_gguf):
    with pytest.raises(EdgelawError, match="model tiny, scheme iq2: ftype IQ2_XXS needs an importance matrix"):
        run(tmp_path, tiny_gguf, "iq2", {"ftype": "IQ2_XXS"})
    assert not list(tmp_path.iterdir())


def test_unknown_tensor_type_is_refused(tmp_path, tiny_gguf):
    with pytest.raises(EdgelawError, match="unknown tensor type 'Q7'"):
        run(tmp_path, tiny_gguf, "bad", {"ftype": "Q4_0", "output_tensor_type": "Q7"})


def test_damaged_base_leaves_nothing_behind(tmp_path, tiny_gguf):
    base = tmp_path / "base.gguf"
    base.write_bytes(tiny_gguf.read_bytes()[:100000])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(EdgelawError, match="model tiny, scheme Q8_0: base: .* truncated"):
        quantize("tiny", "Q8_0", {"ftype": "Q8_0"}, str(base), str(out / "Q8_0.gguf"), str(out / "Q8_0.json"), 2)
    assert not list(out.iterdir())


def test_a_long_quantization_stops_at_once_on_sigterm_and_leaves_nothing(tmp_path, smollm2):
    """Snakemake stops a job with SIGTERM, and Ctrl-C sends SIGINT: either must reach a quantization
    that spends minutes inside one llama.cpp call (IQ3_S of SmolLM2 takes ~40 CPU-seconds)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "IQ3_S.gguf"
    cmd = [sys.executable, "-m", "edgelaw", "quantize", "--model", "smollm2-135m", "--scheme-name", "IQ3_S",
           "--scheme", '{"ftype": "IQ3_S"}', "--base", str(smollm2 / "base.gguf"),
           "--base-json", str(smollm2 / "base.json"), "--out-gguf", str(out),
           "--out-json", str(tmp_path / "IQ3_S.json"), "--threads", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".IQ3_S.gguf.tmp*")):  # llama.cpp has started writing
            assert proc.poll() is None and time.monotonic() < deadline, "the quantization never started"
            time.sleep(0.1)
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    assert code == 130, proc.stderr.read()
    assert waited < 5, f"stopped {waited:.1f} s after SIGTERM"
    assert "interrupted: quantize stopped before it finished" in proc.stderr.read()
    assert list(tmp_path.iterdir()) == []
