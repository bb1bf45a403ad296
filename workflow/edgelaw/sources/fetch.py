"""The fetch stage: model sources behind one interface: each `fetch(name, spec, workdir)` returns (gguf path, info).

`materialize` turns what a source gives into the pipeline's base model: an F16/BF16/F32 GGUF
(dequantized to F16 if the source ships quantized weights) plus base.json describing it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

from edgelaw.core import ggufio
from edgelaw.core.atomic import atomic_path, staging_dir, write_json
from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import say
from edgelaw.core.hashing import sha256_file
from edgelaw.sources import file as file_source
from edgelaw.sources import hf as hf_source
from edgelaw.sources import pypi as pypi_source
from edgelaw.sources import synthetic as synthetic_source
from edgelaw.sources import synthetic_vision


def _fetch_synthetic(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    out = workdir / "synthetic.gguf"
    info = synthetic_source.write(spec["synthetic"], out)
    return out, info


SOURCES = {
    "file": file_source.fetch,
    "hf": hf_source.fetch,
    "pypi": pypi_source.fetch,
    "synthetic": _fetch_synthetic,
}


# linux/fs.h: a copy-on-write clone (btrfs, XFS): instant, and the two files share no block once either is written
FICLONE = 0x40049409


def _copy(src: Path, dst: Path) -> None:
    """A copy, never a link: a base must not share storage with a file its owner may rewrite in place
    (a user's GGUF, a blob in the HF cache), or the measured model would change under its record. A
    copy-on-write clone where the filesystem has them, else the bytes."""
    if sys.platform.startswith("linux"):
        with open(src, "rb") as s, open(dst, "wb") as d:
            try:
                fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
                return
            except OSError:
                pass  # not a filesystem that clones, or src and dst on different ones
    shutil.copyfile(src, dst)


def _damaged_fix(name: str, source: str) -> str:
    return file_source.damaged_fix(name) if source == "file" else ggufio.REMAKE


def materialize(name: str, spec: dict, out_gguf: str | os.PathLike, out_json: str | os.PathLike) -> dict:
    """Fetch model `name` as configured in `spec` and write its base GGUF and base.json."""
    source = spec["source"]
    if source not in SOURCES:
        raise EdgelawError(f"model {name}: unknown source {source!r}; use one of {sorted(SOURCES)}")
    out_gguf = Path(out_gguf)
    with staging_dir(out_gguf) as tmp:
        raw, info = SOURCES[source](name, spec, tmp)
        reader = ggufio.open_gguf(raw, f"model {name}", _damaged_fix(name, source))
        quantized = ggufio.is_quantized(reader)
        del reader
        with atomic_path(out_gguf) as staged:
            if quantized:
                say(f"model {name}: source is quantized, dequantizing to F16")
                ggufio.dequantize_to_f16(raw, staged, f"model {name}")
            else:
                _copy(raw, staged)
            summary = ggufio.summarize(staged, f"model {name}")
            record = {
                "model": name,
                "source": source,
                "source_info": info,
                "dequantized_from": sorted(ggufio.summarize(raw)["tensor_types"]) if quantized else None,
                "sha256": sha256_file(staged),
                **summary,
            }
            write_json(out_json, record)
    return record


def materialize_projector(name: str, spec: dict, language_gguf: str | os.PathLike, out_gguf: str | os.PathLike,
                          out_json: str | os.PathLike) -> dict:
    """Fetch model `name`'s vision projector (models.<name>.mmproj), check that it pairs with the
    language model, and write it as is (projectors are not quantized along the ladder) with its json."""
    from edgelaw.core.projectors import check_pair, projector_info, text_width

    source = spec["source"]
    what = f"{name}.mmproj"
    if source not in SOURCES:
        raise EdgelawError(f"models.{what}: unknown source {source!r}; use one of {sorted(SOURCES)}")
    out_gguf = Path(out_gguf)
    with staging_dir(out_gguf) as tmp:
        if source == "synthetic":
            raw = tmp / "mmproj.gguf"
            # A synthetic projector is made for its language model: it projects to that model's width.
            n_embd = spec["synthetic"].get("projection_dim") or text_width(str(language_gguf), name)[1]
            info = synthetic_vision.write(spec["synthetic"], int(n_embd), raw)
        else:
            raw, info = SOURCES[source](what, spec, tmp)
            ggufio.open_gguf(raw, f"model {what}", _damaged_fix(what, source))
        projector = projector_info(str(raw), name)
        check_pair(projector, str(language_gguf), name)
        with atomic_path(out_gguf) as staged:
            _copy(raw, staged)
            summary = ggufio.summarize(staged, f"model {name}: projector")
            record = {
                "model": name,
                "source": source,
                "source_info": info,
                "sha256": sha256_file(staged),
                "projector_type": projector.projector_type,
                "projection_dim": projector.projection_dim,
                "patch_size": projector.patch_size,
                "merge": projector.merge,
                **{k: summary[k] for k in ("name", "n_params", "weight_bytes", "file_bytes", "bpw", "tensor_types")},
            }
            write_json(out_json, record)
    return record
