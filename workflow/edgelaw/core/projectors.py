"""A VLM's projector GGUF as metadata: its family, patch size, merge, projection width and clamp.

Read by the fetch stage (to check that a projector pairs with its language model) and by the bench
(the clamp and the pixels one token covers); running a projector is edgelaw.measure.vision's job.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgelaw.core import ggufio
from edgelaw.core.errors import EdgelawError

# Projector families whose preprocessing clamps the image between a minimum and a maximum number of
# tokens, with llama.cpp's default maximum (tools/mtmd/clip.cpp); for these, image_max_tokens moves the
# clamp. All of them merge 2x2 patches into one token unless the GGUF says otherwise.
CLAMPED_FAMILIES = {"qwen2vl_merger": 4096, "qwen2.5vl_merger": 4096, "qwen3vl_merger": 4096}


@dataclass
class ProjectorInfo:
    path: str
    projector_type: str
    projection_dim: int
    patch_size: int
    merge: int

    @property
    def token_side(self) -> int:
        """Pixels along one side of the square that one image token covers."""
        return self.patch_size * self.merge

    def clamp_tokens(self, max_tokens: int | None) -> int | None:
        """The maximum image tokens in force: the configured one, else the family's default."""
        return max_tokens or CLAMPED_FAMILIES.get(self.projector_type)


def projector_info(path: str, model: str) -> ProjectorInfo:
    """Read a projector GGUF's family and geometry; raise naming the model if it is not a projector."""
    what = f"model {model}: projector"
    reader = ggufio.open_gguf(path, what)
    arch = ggufio.field_value(reader, "general.architecture")
    kind = ggufio.field_value(reader, "clip.projector_type") or ggufio.field_value(reader, "clip.vision.projector_type")
    if arch != "clip" or not ggufio.field_value(reader, "clip.has_vision_encoder", False) or not kind:
        raise EdgelawError(
            f"{what} {path} is not a vision projector (architecture {arch!r}, projector type {kind!r}); "
            f"set models.{model}.mmproj to the model's mmproj GGUF"
        )
    return ProjectorInfo(
        path=str(path),
        projector_type=str(kind),
        projection_dim=int(ggufio.field_value(reader, "clip.vision.projection_dim", 0)),
        patch_size=int(ggufio.field_value(reader, "clip.vision.patch_size", 0)),
        merge=int(ggufio.field_value(reader, "clip.vision.spatial_merge_size", 2 if kind in CLAMPED_FAMILIES else 1)),
    )


def text_width(language_gguf: str, model: str) -> tuple[str, int | None]:
    """The language model's architecture and embedding width: the width its projector must emit."""
    reader = ggufio.open_gguf(language_gguf, f"model {model}")
    arch = ggufio.field_value(reader, "general.architecture")
    n_embd = ggufio.field_value(reader, f"{arch}.embedding_length")
    return arch, None if n_embd is None else int(n_embd)


def check_pair(info: ProjectorInfo, language_gguf: str, model: str) -> None:
    """The projector must emit embeddings of the language model's width, or the two are not a pair."""
    arch, n_embd = text_width(language_gguf, model)
    if n_embd is not None and info.projection_dim != n_embd:
        raise EdgelawError(
            f"model {model}: the projector {info.path} emits {info.projection_dim}-wide embeddings but the "
            f"language model {language_gguf} ({arch}) is {n_embd} wide: they are not a pair; "
            f"set models.{model}.mmproj to the projector made for this language model"
        )


def check_clamp(info: ProjectorInfo, max_tokens: int | None, min_tokens: int | None, model: str) -> None:
    if (max_tokens or min_tokens) and info.projector_type not in CLAMPED_FAMILIES:
        raise EdgelawError(
            f"models.{model}.image_max_tokens/image_min_tokens: the projector family {info.projector_type!r} has no "
            f"token clamp to move (families with one: {', '.join(sorted(CLAMPED_FAMILIES))}); remove the setting"
        )
    if max_tokens and min_tokens and min_tokens > max_tokens:
        raise EdgelawError(f"models.{model}: image_min_tokens {min_tokens} is above image_max_tokens {max_tokens}")
