"""llama.cpp helpers shared by quantization, the bench worker and the quality scorer."""

from __future__ import annotations

import ctypes
from functools import lru_cache

from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import detail


def lib():
    import llama_cpp

    return llama_cpp


@lru_cache(maxsize=1)
def build_info() -> dict:
    llama_cpp = lib()
    return {
        "llama_cpp_python": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
        "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload()),
    }


def load_model(path: str, what: str, repack: bool = True):
    """Load a GGUF on the CPU only (no layer offloaded); raise naming `what` and llama.cpp's reason (its
    log's error lines, from the capture in force or one made for the load) if llama.cpp cannot."""
    ll = lib()
    capture = _capture or LogCapture()
    seen = len(capture.lines)
    ll.llama_backend_init()
    mparams = ll.llama_model_default_params()
    mparams.n_gpu_layers = 0
    # llama.cpp's CPU repacking keeps a second, interleaved copy of some weights (Q4_0 and others)
    # beside the mmapped file: faster matmuls, more resident memory. On by default, as in llama-bench.
    mparams.use_extra_bufts = repack
    model = ll.llama_model_load_from_file(path.encode(), mparams)
    if not model:
        reason = capture.errors(since=seen) or "no reason in llama.cpp's log"
        raise EdgelawError(f"{what}: llama.cpp could not load {path}: {reason}")
    return model


def new_context(model, what: str, n_ctx: int, threads: int, n_batch: int | None = None,
                n_ubatch: int | None = None, fix: str = "", n_seq_max: int = 1):
    """A CPU-only context (no KV or op offload) of n_ctx tokens; raise naming `what` if llama.cpp cannot.
    With n_seq_max > 1, each sequence has its own n_ctx / n_seq_max cells of the KV cache."""
    ll = lib()
    cparams = ll.llama_context_default_params()
    cparams.n_ctx = n_ctx
    cparams.n_seq_max = n_seq_max
    cparams.kv_unified = False  # independent prompts: each attends to its own cells only
    cparams.n_batch = n_batch or n_ctx
    if n_ubatch:
        cparams.n_ubatch = n_ubatch
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.offload_kqv = False
    cparams.op_offload = False
    cparams.no_perf = True
    ctx = ll.llama_init_from_model(model, cparams)
    if not ctx:
        raise EdgelawError(f"{what}: llama.cpp could not create a context of {n_ctx} tokens (out of memory?){fix}")
    return ctx


@lru_cache(maxsize=1)
def _ggml_cpu():
    """ggml's CPU backend library as llama-cpp-python ships it, or None where it is not found."""
    from pathlib import Path

    import llama_cpp.llama_cpp as bindings

    libdir = Path(bindings.__file__).parent / "lib"
    for name in ("libggml-cpu.so", "libggml-cpu.dylib", "ggml-cpu.dll"):
        if (libdir / name).is_file():
            cpu = ctypes.CDLL(str(libdir / name))
            cpu.ggml_threadpool_params_init.argtypes = [ctypes.c_void_p, ctypes.c_int]
            cpu.ggml_threadpool_new.argtypes = [ctypes.c_void_p]
            cpu.ggml_threadpool_new.restype = ctypes.c_void_p
            bindings._lib.llama_attach_threadpool.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
            bindings._lib.llama_attach_threadpool.restype = None
            return cpu, bindings._lib
    return None


def attach_threadpool(ctx, threads: int) -> int | None:
    """Give the context a persistent ggml threadpool with ggml's defaults, as llama-bench does.

    Without one, ggml builds and frees a pool for every graph it computes, i.e. for every decoded
    token; with it the worker's decode matches llama-bench's (bench/fidelity.py). The pool lives as
    long as the process. Returns its handle, or None where the backend library is not found.
    """
    found = _ggml_cpu()
    if found is None:
        return None
    cpu, llama = found
    # ggml_threadpool_params_init fills the struct; a generous buffer keeps this independent of its layout.
    params = ctypes.create_string_buffer(8192)
    cpu.ggml_threadpool_params_init(params, threads)
    pool = cpu.ggml_threadpool_new(params)
    if pool:
        llama.llama_attach_threadpool(ctx, pool, pool)
    return pool


def greedy_token(ctx, i: int, n_vocab: int) -> int:
    """The most likely token at output row `i` of the last decode (-1: the last row); the first of
    equal maxima, as llama.cpp's greedy sampler picks. An argmax over a view of llama.cpp's logits,
    not a copy: 5 us a token where the sampler chain, which builds a candidate array over the whole
    vocabulary, takes 54 (0.8% of SmolLM2's decode step)."""
    import numpy as np

    logits = lib().llama_get_logits_ith(ctx, i)
    if not logits:
        raise EdgelawError(f"llama.cpp returned no logits for output row {i}")
    view = (ctypes.c_float * n_vocab).from_address(ctypes.addressof(logits.contents))
    return int(np.frombuffer(view, dtype=np.float32).argmax())


def greedy_sampler():
    """llama.cpp's own greedy sampler: the reference `greedy_token` is tested against."""
    ll = lib()
    sampler = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
    ll.llama_sampler_chain_add(sampler, ll.llama_sampler_init_greedy())
    return sampler


def tokenize(vocab, text: str, add_special: bool, parse_special: bool = False) -> list[int]:
    ll = lib()
    data = text.encode()
    buf = (ll.llama_token * (len(data) + 16))()
    n = ll.llama_tokenize(vocab, data, len(data), buf, len(buf), add_special, parse_special)
    if n < 0:
        raise EdgelawError("llama.cpp could not tokenize the text")
    return list(buf[:n])


def chat_prompt(template: bytes | None, content: str) -> str | None:
    """A chat template (`llama_model_chat_template`) applied to one user turn, or None where there is
    none or llama.cpp does not know it."""
    ll = lib()
    if not template:
        return None
    msgs = (ll.llama_chat_message * 1)(ll.llama_chat_message(b"user", content.encode()))
    size = 256 + 4 * len(content)
    for _ in range(2):
        buf = ctypes.create_string_buffer(size)
        n = ll.llama_chat_apply_template(template, msgs, 1, True, buf, size)
        if n < 0:
            return None
        if n <= size:
            return buf.raw[:n].decode("utf-8", "replace")
        size = n
    return None


_installed_callback = None
_capture = None  # the LogCapture in force, whose lines a failed load quotes


class LogCapture:
    """Route llama.cpp's log through Python so that errors can be quoted; echo to the log (or stderr)
    unless `echo` is False."""

    def __init__(self, echo: bool = True):
        self.lines: list[str] = []
        self.echo = echo
        llama_cpp = lib()

        @llama_cpp.llama_log_callback
        def _callback(level, text, user_data):
            msg = text.decode("utf-8", "replace")
            self.lines.append(msg)
            if self.echo:
                detail(msg)

        # llama.cpp keeps a raw pointer to the callback after this object is gone: the module holds it
        # until the next one is installed, or a later log line would call freed memory.
        global _installed_callback, _capture
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed_callback, _capture = _callback, self

    def errors(self, since: int = 0) -> str:
        """The last error lines (from line `since` on), joined."""
        keep = [l.strip() for l in self.lines[since:] if "error" in l.lower() or "failed" in l.lower()]
        return " | ".join(keep[-3:])
