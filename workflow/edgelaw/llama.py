"""The one place that imports llama_cpp: version, build info and captured log lines."""

from __future__ import annotations

import ctypes
from functools import lru_cache

from .report_log import detail


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


_installed_callback = None


class LogCapture:
    """Route llama.cpp's log through Python so that errors can be quoted; echo to stderr."""

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
        global _installed_callback
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed_callback = _callback

    def errors(self) -> str:
        keep = [l.strip() for l in self.lines if "error" in l.lower() or "failed" in l.lower()]
        return " | ".join(keep[-3:])
