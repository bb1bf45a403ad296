import numpy as np
import pytest

from edgelaw.core import ggufio
from edgelaw.core.errors import EdgelawError
from edgelaw.quantize.ptq import quantize


def test_missing_file(tmp_path):
    with pytest.raises(EdgelawError, match="does not exist"):
        ggufio.open_gguf(tmp_path / "nope.gguf", "model m")


def test_not_a_gguf(tmp_path):
    path = tmp_path / "x.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(EdgelawError, match=r"model m: .* is not a GGUF file"):
        ggufio.open_gguf(path, "model m")


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(tmp_path, tiny_gguf, keep):
    data = tiny_gguf.read_bytes()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(EdgelawError, match="truncated"):
        ggufio.open_gguf(path, "model m")


def test_dequantize_restores_values_and_metadata(tmp_path, tiny_gguf):
    q8 = tmp_path / "q8.gguf"
    quantize("tiny", "Q8_0", {"ftype": "Q8_0"}, str(tiny_gguf), str(q8), str(tmp_path / "q8.json"), 2)
    f16 = tmp_path / "f16.gguf"
    ggufio.dequantize_to_f16(q8, f16)
    src, back = ggufio.open_gguf(tiny_gguf), ggufio.open_gguf(f16)
    assert not ggufio.is_quantized(back) and ggufio.is_quantized(ggufio.open_gguf(q8))
    assert ggufio.field_value(back, "tokenizer.ggml.merges") == ggufio.field_value(src, "tokenizer.ggml.merges")
    assert ggufio.field_value(back, "general.file_type") == 1
    a = {t.name: np.asarray(t.data, dtype=np.float32) for t in src.tensors}
    for t in back.tensors:
        b = np.asarray(t.data, dtype=np.float32)
        assert b.shape == a[t.name].shape
        assert np.abs(b - a[t.name]).max() <= 0.01 * max(np.abs(a[t.name]).max(), 1e-6) + 1e-3
