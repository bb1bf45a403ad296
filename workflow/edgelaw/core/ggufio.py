"""Reading, checking, summarising and rewriting GGUF files with the `gguf` package."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from edgelaw.core.errors import EdgelawError

FLOAT_TYPES = {"F32", "F16", "BF16", "F64"}


def _gguf():
    import gguf  # imported lazily: the Snakefile imports edgelaw modules at parse time

    return gguf


# For the files the pipeline makes (a base, a scheme): made again by the job that wrote them.
REMAKE = "delete it and run again to make it again"


def open_gguf(path: str | os.PathLike, what: str = "model", fix: str = REMAKE):
    """Open a GGUF for reading, or fail with a message that says what is wrong with the file and `fix`
    (the user's own file needs other advice than one the pipeline made)."""
    path = Path(path)
    if not path.exists():
        raise EdgelawError(f"{what}: GGUF file {path} does not exist; check the path or run again to make it")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise EdgelawError(
            f"{what}: {path} is not a GGUF file (starts with {magic!r}, expected b'GGUF'); "
            "point the model at a .gguf file"
        )
    size = path.stat().st_size
    try:
        reader = _gguf().GGUFReader(path, "r")
    except Exception as exc:  # the reader raises assorted numpy/struct errors on a damaged file
        raise EdgelawError(
            f"{what}: {path} is truncated or damaged ({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > size:
        raise EdgelawError(
            f"{what}: {path} is truncated ({size} bytes, tensors need {end}); {fix}"
        )
    return reader


def field_value(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def summarize(path: str | os.PathLike, what: str = "model") -> dict:
    """Architecture, parameter count, weight bytes, effective bits per weight and tensor types."""
    reader = open_gguf(path, what)
    hist: dict[str, dict[str, int]] = defaultdict(lambda: {"tensors": 0, "params": 0, "bytes": 0})
    n_params = n_bytes = 0
    for t in reader.tensors:
        name = t.tensor_type.name
        hist[name]["tensors"] += 1
        hist[name]["params"] += int(t.n_elements)
        hist[name]["bytes"] += int(t.n_bytes)
        n_params += int(t.n_elements)
        n_bytes += int(t.n_bytes)
    arch = field_value(reader, "general.architecture", "unknown")
    return {
        "arch": arch,
        "name": field_value(reader, "general.name"),
        "file_type": field_value(reader, "general.file_type"),
        "context_length": field_value(reader, f"{arch}.context_length"),
        "n_params": n_params,
        "weight_bytes": n_bytes,
        "file_bytes": Path(path).stat().st_size,
        "bpw": 8.0 * n_bytes / n_params if n_params else float("nan"),
        "tensor_types": dict(sorted(hist.items())),
    }


def is_quantized(reader) -> bool:
    return any(t.tensor_type.name not in FLOAT_TYPES for t in reader.tensors)


def copy_metadata(reader, writer, overrides: dict | None = None) -> None:
    """Copy every key-value field except the writer's own; `overrides` maps key -> (value, type)."""
    gguf = _gguf()
    overrides = dict(overrides or {})
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        if field.name in overrides:
            value, vtype = overrides.pop(field.name)
            sub_type = None
        else:
            value = field.contents()
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
    for key, (value, vtype) in overrides.items():
        writer.add_key_value(key, value, vtype)


def dequantize_to_f16(src: str | os.PathLike, dst: str | os.PathLike, what: str = "model") -> None:
    """Rewrite a quantized GGUF as F16 (1-D tensors as F32), streaming one tensor at a time."""
    gguf = _gguf()
    reader = open_gguf(src, what)
    arch = field_value(reader, "general.architecture")
    writer = gguf.GGUFWriter(dst, arch)
    copy_metadata(reader, writer, {"general.file_type": (int(gguf.LlamaFileType.MOSTLY_F16), gguf.GGUFValueType.UINT32)})

    def target_dtype(t):
        return np.float32 if len(t.shape) == 1 or t.tensor_type.name == "F32" else np.float16

    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape)]
        dtype = target_dtype(t)
        writer.add_tensor_info(t.name, shape, np.dtype(dtype), int(t.n_elements) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        data = gguf.quants.dequantize(t.data, t.tensor_type)
        writer.write_tensor_data(np.ascontiguousarray(data.reshape([int(d) for d in reversed(t.shape)]), dtype=target_dtype(t)))
    writer.close()
