"""What a bench job reads of the validated config's `bench` section, declared per workload.

The defaults are the config schema's; this module only says which keys each workload reads, so that
changing a key reruns the jobs of the workloads that read it and no others (the workflow passes each
job `workload_settings(...)` and nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.textfile import read_text
from edgelaw.data import shipped

# Read by every workload: the repetitions, the sampler and llama.cpp's batch.
COMMON_KEYS = ("repetitions", "shuffle", "warmup", "sample_hz", "idle_seconds", "settle_seconds", "n_batch", "n_ubatch", "repack",
               "disturbance")
# Read by one workload only: the token sweep's prompts, the resolution sweep's images.
WORKLOAD_KEYS = {
    "tokens": ("prompt_tokens", "n_gen", "corpus"),
    "resolution": ("resolution",),
}
WORKLOADS = tuple(WORKLOAD_KEYS)

# Room in the context for the text around an image (chat frame, question): far more than needed.
IMAGE_TEXT_TOKENS = 256


def check_workload(workload: str) -> None:
    if workload not in WORKLOAD_KEYS:
        raise EdgelawError(f"workload {workload!r} is not known; use one of {', '.join(WORKLOADS)}")


def workload_settings(bench: dict, workload: str) -> dict:
    """The keys of the bench section that a job of `workload` reads."""
    check_workload(workload)
    keys = COMMON_KEYS + WORKLOAD_KEYS[workload]
    if missing := [k for k in keys if k not in bench]:
        raise EdgelawError(
            f"bench settings: missing {', '.join(missing)} (a {workload} job reads {', '.join(keys)}); pass the "
            "bench section of a validated config, whose defaults fill every key (edgelaw.core.config.defaults)"
        )
    return {k: bench[k] for k in keys}


@dataclass(frozen=True)
class Settings:
    """One bench job's settings; a key of another workload is None."""

    repetitions: int
    shuffle: bool
    warmup: int
    sample_hz: float
    idle_seconds: float
    settle_seconds: float
    n_batch: int
    n_ubatch: int
    repack: bool
    disturbance: dict  # edgelaw.measure.disturbance.DisturbanceSettings
    prompt_tokens: list[int] | None
    n_gen: int | None
    corpus: str | None
    resolution: dict | None

    @classmethod
    def from_config(cls, bench: dict, workload: str) -> "Settings":
        """From the bench section (whole, or a job's `workload_settings`)."""
        others = {k: None for w, keys in WORKLOAD_KEYS.items() if w != workload for k in keys}
        return cls(**workload_settings(bench, workload), **others)

    def corpus_path(self) -> Path:
        if self.corpus:
            path = Path(self.corpus)
            if not path.is_file():
                raise EdgelawError(f"bench.corpus: {path} does not exist; point it at a text file or remove it")
            return path
        return shipped("corpus.txt")

    def corpus_text(self) -> str:
        return read_text(self.corpus_path(), "bench.corpus")

    def n_ctx(self, image_tokens: int | None = None) -> int:
        if image_tokens is None:
            return max(self.prompt_tokens) + self.n_gen + 8
        # the image's tokens, the chat frame and question around them, and the answer
        return image_tokens + IMAGE_TEXT_TOKENS + self.resolution["n_gen"]
