"""Post-training quantization of a base GGUF with llama.cpp (llama_model_quantize)."""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import threading
import time

from edgelaw.core import ggufio
from edgelaw.core.atomic import atomic_path, free_bytes, human_bytes, no_room_error, write_json
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file
from edgelaw.core.integrity import check_recorded
from edgelaw.core.llama import LogCapture, build_info, lib

# llama.cpp refuses these without an importance matrix (see tensor_requires_imatrix in llama-quant.cpp).
NEEDS_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_S", "IQ1_M", "Q2_K_S", "IQ3_XXS"}


def ftype_value(name: str) -> int:
    llama_cpp = lib()
    attr = "LLAMA_FTYPE_ALL_F32" if name == "F32" else f"LLAMA_FTYPE_MOSTLY_{name}"
    if not hasattr(llama_cpp, attr):
        known = sorted(k.removeprefix("LLAMA_FTYPE_MOSTLY_") for k in dir(llama_cpp) if k.startswith("LLAMA_FTYPE_MOSTLY_"))
        raise EdgelawError(f"unknown ftype {name!r}; llama.cpp knows {known}")
    return int(getattr(llama_cpp, attr))


def ggml_type_value(name: str, what: str) -> int:
    import gguf

    try:
        return int(gguf.GGMLQuantizationType[name])
    except KeyError:
        known = [t.name for t in gguf.GGMLQuantizationType]
        raise EdgelawError(f"{what}: unknown tensor type {name!r}; use one of {known}") from None


def build_params(scheme: dict, threads: int, what: str):
    """The llama_model_quantize_params for a scheme; the returned keepalive must outlive the call."""
    llama_cpp = lib()
    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = threads
    params.ftype = ftype_value(scheme["ftype"])
    params.pure = bool(scheme.get("pure", False))
    if scheme.get("output_tensor_type"):
        params.output_tensor_type = ggml_type_value(scheme["output_tensor_type"], what)
    if scheme.get("token_embedding_type"):
        params.token_embedding_type = ggml_type_value(scheme["token_embedding_type"], what)
    keepalive = []
    overrides = scheme.get("tensor_types") or {}
    if overrides:
        arr = (llama_cpp.llama_model_tensor_override * (len(overrides) + 1))()
        for i, (pattern, tname) in enumerate(overrides.items()):
            encoded = pattern.encode()
            keepalive.append(encoded)
            arr[i].pattern = encoded
            arr[i].type = ggml_type_value(tname, what)
        arr[len(overrides)].pattern = None  # the list ends at a NULL pattern
        keepalive.append(arr)
        params.tt_overrides = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    return params, keepalive


def _write_failed(what: str, out_gguf: str, base: str, errors: str) -> EdgelawError:
    """llama.cpp's "basic_ios::clear: iostream error" is a failed write: say why, where and the fix."""
    folder = os.path.dirname(os.path.abspath(out_gguf))
    free, limit = free_bytes(folder), resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    need = os.path.getsize(base)  # a scheme is never bigger than its base
    if limit != resource.RLIM_INFINITY and limit < need:
        return no_room_error(out_gguf, errno.EFBIG)
    if free < need:
        return no_room_error(out_gguf, errno.ENOSPC)
    return EdgelawError(f"{what}: llama.cpp could not write {out_gguf} ({errors}; the disk of {folder} has "
                        f"{human_bytes(free)} free); check that the folder is writable and has room, and run again")


def _interruptible(call, *args):
    """`call(*args)` in a thread of its own, so that Ctrl-C and Snakemake's SIGTERM reach this process
    at once rather than when a C call of minutes returns (Python runs signal handlers between bytecodes
    of the main thread only). On an interrupt the caller unwinds (its temp file goes) and the process
    exits; the daemon thread dies with it."""
    result = {}

    def run():
        try:
            result["value"] = call(*args)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True, name="llama-quantize")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if "error" in result:
        raise result["error"]
    return result["value"]


def quantize(model: str, scheme_name: str, scheme: dict, base: str, out_gguf: str, out_json: str, threads: int,
             base_json: str | None = None) -> dict:
    """Quantize `base` with one scheme. A pipeline's base comes with its record `base_json`, which its bytes
    must still match (None: a GGUF of a tool or test, not checked)."""
    what = f"model {model}, scheme {scheme_name}"
    if scheme["ftype"] in NEEDS_IMATRIX:
        raise EdgelawError(
            f"{what}: ftype {scheme['ftype']} needs an importance matrix, which this ladder does not provide; "
            "remove the scheme, or add a rule that computes an imatrix (see docs/extending.md)"
        )
    ggufio.open_gguf(base, f"{what}: base")  # a clear error for a missing or damaged base
    # and for one rewritten since its fetch
    base_sha256 = check_recorded(base, base_json, f"{what}: base") if base_json else sha256_file(base)
    params, keepalive = build_params(scheme, threads, what)
    llama_cpp = lib()
    log = LogCapture()
    t0 = time.perf_counter()
    with atomic_path(out_gguf) as tmp:
        status = _interruptible(llama_cpp.llama_model_quantize, os.fsencode(base), os.fsencode(tmp),
                                ctypes.byref(params))
        seconds = time.perf_counter() - t0
        if status != 0:
            errors = log.errors()
            if "iostream error" in errors:
                tmp.unlink(missing_ok=True)  # first, so that the free space named is what is left
                raise _write_failed(what, out_gguf, base, errors)
            raise EdgelawError(f"{what}: llama.cpp failed to quantize: {errors or 'see the log'}")
        summary = ggufio.summarize(tmp, what)
        record = {
            "model": model,
            "scheme": scheme_name,
            "params": scheme,
            "ftype": scheme["ftype"],
            "seconds": round(seconds, 3),
            "threads": threads,
            "base_sha256": base_sha256,
            "sha256": sha256_file(tmp),
            "llama_cpp": build_info(),
            "fallback_tensors": sum("falling back" in l for l in log.lines),
            **summary,
        }
    write_json(out_json, record)
    del keepalive
    return record
