"""The `synthetic` source: a seeded random-weight GGUF of a real architecture (llama, qwen2, qwen2vl).

It loads and runs in llama.cpp like a trained model of the same shape, so it measures the cost of
a shape (0.5B..14B) without downloading weights, and makes a tiny model (a few MB) for tests.
The tokenizer is the shipped byte-level BPE (see edgelaw.sources.bpe).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from edgelaw.sources.bpe import SPECIAL_TOKENS, load_shipped
from edgelaw.core.errors import EdgelawError

ARCHS = {
    "llama": {"rms_eps": 1e-5, "qkv_bias": False},
    "qwen2": {"rms_eps": 1e-6, "qkv_bias": True},
    # Qwen2-VL's language model: qwen2 with M-RoPE, which a Qwen2-VL projector's image tokens need.
    "qwen2vl": {"rms_eps": 1e-6, "qkv_bias": True},
}


def _check(spec: dict) -> None:
    if spec["arch"] not in ARCHS:
        raise EdgelawError(f"synthetic model: arch {spec['arch']!r} is not one of {sorted(ARCHS)}")
    if spec["n_embd"] % spec["n_head"]:
        raise EdgelawError(f"synthetic model: n_embd {spec['n_embd']} must be a multiple of n_head {spec['n_head']}")
    if spec["arch"] == "qwen2vl" and (spec["n_embd"] // spec["n_head"]) % 8:
        raise EdgelawError(
            f"synthetic model: qwen2vl needs a head size (n_embd / n_head = {spec['n_embd'] // spec['n_head']}) "
            "that is a multiple of 8 (M-RoPE sections)"
        )
    if spec["n_head"] % spec["n_head_kv"]:
        raise EdgelawError(f"synthetic model: n_head {spec['n_head']} must be a multiple of n_head_kv {spec['n_head_kv']}")


def mrope_sections(head_dim: int) -> list[int]:
    """Qwen2-VL's split of the rotary half-dimensions into time, height and width: 16/24/24 of 64."""
    half = head_dim // 2
    t = half // 4
    return [t, (half - t) // 2, half - t - (half - t) // 2, 0]


def tensor_shapes(spec: dict, n_vocab: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in file order."""
    d, ff = spec["n_embd"], spec["n_ff"]
    d_kv = d // spec["n_head"] * spec["n_head_kv"]
    yield "token_embd.weight", (n_vocab, d)
    for i in range(spec["n_layer"]):
        b = f"blk.{i}"
        yield f"{b}.attn_norm.weight", (d,)
        yield f"{b}.attn_q.weight", (d, d)
        yield f"{b}.attn_k.weight", (d_kv, d)
        yield f"{b}.attn_v.weight", (d_kv, d)
        if ARCHS[spec["arch"]]["qkv_bias"]:
            yield f"{b}.attn_q.bias", (d,)
            yield f"{b}.attn_k.bias", (d_kv,)
            yield f"{b}.attn_v.bias", (d_kv,)
        yield f"{b}.attn_output.weight", (d, d)
        yield f"{b}.ffn_norm.weight", (d,)
        yield f"{b}.ffn_gate.weight", (ff, d)
        yield f"{b}.ffn_up.weight", (ff, d)
        yield f"{b}.ffn_down.weight", (d, ff)
    yield "output_norm.weight", (d,)
    if not spec.get("tie_embeddings", False):
        yield "output.weight", (n_vocab, d)


def _tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name.endswith("norm.weight"):
        return np.ones(shape, dtype=np.float32)
    if name.endswith(".bias"):
        return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    return (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float16)


def _add_tokenizer(writer, gguf, add_bos: bool) -> int:
    tok = load_shipped()
    n_normal = len(tok["tokens"]) - len(SPECIAL_TOKENS)
    types = [int(gguf.TokenType.NORMAL)] * n_normal + [int(gguf.TokenType.CONTROL)] * len(SPECIAL_TOKENS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(types)
    writer.add_token_merges(tok["merges"])
    eot = tok["tokens"].index("<|endoftext|>")
    writer.add_bos_token_id(eot)
    writer.add_eos_token_id(tok["tokens"].index("<|im_end|>"))
    writer.add_add_bos_token(add_bos)
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return len(tok["tokens"])


def write(spec: dict, dest: str | os.PathLike) -> dict:
    """Write the GGUF for `spec` to `dest`; return what base.json records about the source."""
    import gguf

    _check(spec)
    arch = spec["arch"]
    writer = gguf.GGUFWriter(dest, arch)
    writer.add_name(f"synthetic-{arch}-{spec['n_layer']}x{spec['n_embd']}")
    writer.add_context_length(spec["context_length"])
    writer.add_embedding_length(spec["n_embd"])
    writer.add_block_count(spec["n_layer"])
    writer.add_feed_forward_length(spec["n_ff"])
    writer.add_head_count(spec["n_head"])
    writer.add_head_count_kv(spec["n_head_kv"])
    writer.add_rope_dimension_count(spec["n_embd"] // spec["n_head"])
    writer.add_rope_freq_base(float(spec.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(ARCHS[arch]["rms_eps"])
    if arch == "qwen2vl":
        writer.add_rope_dimension_sections(mrope_sections(spec["n_embd"] // spec["n_head"]))
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    n_vocab = _add_tokenizer(writer, gguf, bool(spec.get("add_bos")))
    writer.add_vocab_size(n_vocab)

    write_tensors(writer, list(tensor_shapes(spec, n_vocab)), _tensor, spec["seed"])
    return {"kind": "synthetic", "spec": spec, "dequantized": False}


def write_tensors(writer, shapes: list[tuple[str, tuple[int, ...]]], make, seed: int) -> None:
    """Stream seeded tensors into `writer` (F32 vectors, F16 matrices) and close it: `make(rng, name,
    shape)` gives each one in file order, so no more than one tensor is in memory at a time."""
    for name, shape in shapes:
        dtype = np.dtype(np.float32 if len(shape) == 1 else np.float16)
        writer.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, shape in shapes:
        writer.write_tensor_data(make(rng, name, shape))
    writer.close()
