import llama_cpp
import pytest

from edgelaw.core import ggufio
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file
from edgelaw.sources.synthetic import write


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, tiny_spec):
    a, b, c = tmp_path / "a.gguf", tmp_path / "b.gguf", tmp_path / "c.gguf"
    write(tiny_spec, a)
    write(tiny_spec, b)
    write({**tiny_spec, "seed": 1}, c)
    assert sha256_file(a) == sha256_file(b) != sha256_file(c)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_loads_in_llama_cpp_with_a_real_tokenizer(tmp_path, tiny_spec, arch):
    path = tmp_path / f"{arch}.gguf"
    write({**tiny_spec, "arch": arch}, path)
    summary = ggufio.summarize(path)
    assert summary["arch"] == arch and 15.9 < summary["bpw"] < 16.1
    model = llama_cpp.Llama(str(path), n_ctx=256, n_threads=2, verbose=False)
    text = b"A Python program is constructed from code blocks."
    tokens = model.tokenize(text, add_bos=False)
    assert model.detokenize(tokens) == text
    assert len(tokens) < len(text) / 2  # merges apply: fewer tokens than bytes
    out = model.create_completion("Names refer to objects", max_tokens=4, temperature=0)
    assert out["usage"]["completion_tokens"] >= 1


def test_parameter_count_follows_the_shape(tmp_path, tiny_spec):
    path = tmp_path / "m.gguf"
    write(tiny_spec, path)
    d, ff, layers, vocab = 256, 512, 2, 1024
    d_kv = d // 4 * 2
    per_layer = 2 * d + d * d * 2 + 2 * d_kv * d + 3 * d * ff
    assert ggufio.summarize(path)["n_params"] == layers * per_layer + 2 * vocab * d + d


def test_inconsistent_heads_are_refused(tmp_path, tiny_spec):
    with pytest.raises(EdgelawError, match="n_head 4 must be a multiple of n_head_kv 3"):
        write({**tiny_spec, "n_head_kv": 3}, tmp_path / "x.gguf")
