"""A seeded random-weight vision projector (mmproj) GGUF of the Qwen2-VL family.

It has the tensors and keys that llama.cpp's libmtmd expects of a Qwen2-VL projector
(`clip.projector_type = qwen2vl_merger`, tools/mtmd/clip.cpp): two patch-embedding convolutions
(one per temporal frame), a ViT of `n_layer` blocks with M-RoPE and quick-GELU MLPs, the merger's
layer norm and its two-layer MLP over 2x2 merged patches. It therefore goes through the model's real
preprocessing (resize to a multiple of 28 px between a minimum and a maximum token count), so its
cost against resolution has the family's knee at the clamp, at a small fraction of the real cost.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.sources.synthetic import write_tensors

PROJECTORS = {"qwen2vl": "qwen2vl_merger"}
# Qwen2-VL's preprocessor_config.json: OpenAI CLIP's normalisation.
IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]
MERGE = 2  # Qwen2-VL merges 2x2 patches into one token (spatial_merge_size)


def _check(spec: dict, projection_dim: int) -> None:
    if spec["projector"] not in PROJECTORS:
        raise EdgelawError(f"synthetic projector: {spec['projector']!r} is not one of {sorted(PROJECTORS)}")
    d_head, rest = divmod(spec["n_embd"], spec["n_head"])
    if rest or d_head % 4:
        # M-RoPE splits every head into four sections.
        raise EdgelawError(
            f"synthetic projector: n_embd {spec['n_embd']} / n_head {spec['n_head']} must be a whole multiple of 4"
        )
    if projection_dim < 1:
        raise EdgelawError("synthetic projector: projection_dim must be the language model's embedding length")


def tensor_shapes(spec: dict, projection_dim: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor; numpy shapes are ggml's reversed."""
    d, ff, p = spec["n_embd"], spec["n_ff"], spec["patch_size"]
    merged = d * MERGE * MERGE
    yield "v.patch_embd.weight", (d, 3, p, p)
    yield "v.patch_embd.weight.1", (d, 3, p, p)
    for i in range(spec["n_layer"]):
        b = f"v.blk.{i}"
        for norm in ("ln1", "ln2"):
            yield f"{b}.{norm}.weight", (d,)
            yield f"{b}.{norm}.bias", (d,)
        for proj in ("attn_q", "attn_k", "attn_v", "attn_out"):
            yield f"{b}.{proj}.weight", (d, d)
            yield f"{b}.{proj}.bias", (d,)
        yield f"{b}.ffn_up.weight", (ff, d)
        yield f"{b}.ffn_up.bias", (ff,)
        yield f"{b}.ffn_down.weight", (d, ff)
        yield f"{b}.ffn_down.bias", (d,)
    yield "v.post_ln.weight", (d,)
    yield "v.post_ln.bias", (d,)
    yield "mm.0.weight", (merged, merged)
    yield "mm.0.bias", (merged,)
    yield "mm.2.weight", (projection_dim, merged)
    yield "mm.2.bias", (projection_dim,)


def _tensor(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name.endswith(("ln1.weight", "ln2.weight", "post_ln.weight")):
        return np.ones(shape, dtype=np.float32)
    values = 0.02 * rng.standard_normal(shape, dtype=np.float32)
    return values if len(shape) == 1 else values.astype(np.float16)


def write(spec: dict, projection_dim: int, dest: str | os.PathLike) -> dict:
    """Write the projector GGUF for `spec`, projecting to `projection_dim` (the text model's n_embd)."""
    import gguf

    _check(spec, projection_dim)
    writer = gguf.GGUFWriter(dest, "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_name(f"synthetic-{spec['projector']}-mmproj-{spec['n_layer']}x{spec['n_embd']}")
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(PROJECTORS[spec["projector"]])
    writer.add_vision_projection_dim(projection_dim)
    writer.add_vision_image_size(spec["image_size"])
    writer.add_vision_patch_size(spec["patch_size"])
    writer.add_vision_embedding_length(spec["n_embd"])
    writer.add_vision_feed_forward_length(spec["n_ff"])
    writer.add_vision_block_count(spec["n_layer"])
    writer.add_vision_head_count(spec["n_head"])
    writer.add_vision_attention_layernorm_eps(1e-6)
    writer.add_vision_spatial_merge_size(MERGE)
    writer.add_vision_image_mean(IMAGE_MEAN)
    writer.add_vision_image_std(IMAGE_STD)

    write_tensors(writer, list(tensor_shapes(spec, projection_dim)), _tensor, spec["seed"])
    return {"kind": "synthetic", "spec": spec, "projection_dim": projection_dim}
