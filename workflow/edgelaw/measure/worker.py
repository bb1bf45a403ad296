"""The inference worker: a child process that loads one GGUF once and runs a schedule of points.

It talks to the controller through a pipe: every event carries the monotonic time (one clock for
both processes) and the worker's own CPU time (the OS counter, all threads). Inference uses
llama.cpp's C API directly: prompt tokens go in as token ids, the greedy pick is an argmax over
llama.cpp's own logits buffer read in place (no copy, no Python loop over the vocabulary),
end-of-sequence is ignored, and the KV cache is cleared before each run so that no prefill is
skipped. CPU only: no layer is offloaded.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time

from edgelaw.core.llama import LogCapture, attach_threadpool, greedy_token, lib, load_model, new_context, tokenize

# A test hook: the worker aborts (as a crash would) when it reaches this run_id.
CRASH_ENV = "EDGELAW_CRASH_AT_RUN"
_silence = None


def _now() -> tuple[float, float]:
    return time.monotonic(), time.process_time()


class Engine:
    """One loaded model and context; `run` measures one point."""

    def __init__(self, path: str, threads: int, n_ctx: int, n_batch: int, n_ubatch: int, repack: bool = True):
        self.ll = ll = lib()
        self.model = load_model(path, "bench worker", repack)
        self.n_ctx_train = ll.llama_model_n_ctx_train(self.model)
        if n_ctx > self.n_ctx_train:
            raise RuntimeError(
                f"the sweep needs a context of {n_ctx} tokens but the model was trained for {self.n_ctx_train}; "
                "lower bench.prompt_tokens or bench.n_gen"
            )
        self.ctx = new_context(self.model, "bench worker", n_ctx, threads, n_batch, n_ubatch)
        self.threadpool = attach_threadpool(self.ctx, threads)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.mem = ll.llama_get_memory(self.ctx)
        self.n_batch = n_batch
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.one = (ll.llama_token * 1)()

    def tokenize(self, text: str) -> list[int]:
        return tokenize(self.vocab, text, add_special=True)

    def greedy(self) -> int:
        """The most likely next token after the last decoded one."""
        return greedy_token(self.ctx, -1, self.n_vocab)

    def _decode(self, ptr, n: int) -> None:
        rc = self.ll.llama_decode(self.ctx, self.ll.llama_batch_get_one(ptr, n))
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} (context full or out of memory)")

    def run(self, tokens, n: int, n_gen: int, events) -> None:
        """Prefill the first `n` of `tokens`, then decode `n_gen` tokens; `events(name)` marks phases."""
        ll = self.ll
        ll.llama_memory_clear(self.mem, True)
        events("start")
        for i in range(0, n, self.n_batch):
            chunk = min(self.n_batch, n - i)
            self._decode(ctypes.cast(ctypes.byref(tokens, i * ctypes.sizeof(ll.llama_token)), ctypes.POINTER(ll.llama_token)), chunk)
        tok = self.greedy()
        events("first_token")
        one = self.one
        for _ in range(n_gen):
            one[0] = tok
            self._decode(one, 1)
            tok = self.greedy()
        events("end")


def _image_runner(engine: Engine, vision: dict, threads: int):
    """For the resolution workload: the projector, the content and the prompt; None for the token sweep."""
    if not vision:
        return None
    from llama_cpp import mtmd_cpp

    from edgelaw.measure import images
    from edgelaw.core.llama import chat_prompt
    from edgelaw.measure.vision import Projector

    mtmd_cpp.mtmd_helper_log_set(_silence, ctypes.c_void_p(0))  # libmtmd logs every image otherwise
    projector = Projector(engine, vision["mmproj"], threads, vision["max_tokens"], vision["min_tokens"])
    content = images.load(vision["image"])
    template = engine.ll.llama_model_chat_template(engine.model, None)
    prompt = chat_prompt(template, "{image}" + vision["question"]) or "{image}" + vision["question"]

    def run(point: dict, events) -> dict:
        rgb = images.render(content, point["w"], point["h"])
        return projector.run(rgb, point["w"], point["h"], prompt, point["n_gen"], events)

    return run


def main(conn, path: str, threads: int, n_ctx: int, n_batch: int, n_ubatch: int, repack: bool, corpus: str,
         longest: int, vision: dict | None = None) -> None:
    """Entry point of the child process. It loads the model, then runs the points the controller sends
    one at a time (("run", point)) until it is told to stop (("stop", {})). Messages back: (kind,
    payload) tuples. The controller decides what comes next after each point (the next one, or the same
    point again when the run was disturbed), so the worker keeps no schedule of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the controller stops us
    llama_cpp = lib()
    global _silence
    _silence = llama_cpp.llama_log_callback(lambda level, text, data: None)  # kept alive: llama.cpp holds a raw pointer
    LogCapture(echo=False)  # llama.cpp's log kept, not printed: a failed load quotes its reason
    crash_at = os.environ.get(CRASH_ENV)

    def send(kind, **payload):
        t, cpu = _now()
        conn.send((kind, {"t": t, "cpu_s": cpu, **payload}))

    send("load_start")
    try:
        engine = Engine(path, threads, n_ctx, n_batch, n_ubatch, repack)
        corpus_tokens = engine.tokenize(corpus)
        run_image = _image_runner(engine, vision, threads)
    except Exception as exc:  # reported to the controller, which records every point as failed
        send("fatal", error=str(exc))
        return
    llama_cpp.llama_log_set(_silence, ctypes.c_void_p(0))  # the runs: llama.cpp silent, no callback into Python
    send("load_end", n_corpus_tokens=len(corpus_tokens), n_ctx_train=engine.n_ctx_train)
    if run_image is None and longest > len(corpus_tokens):
        send("fatal", error=f"the corpus has {len(corpus_tokens)} tokens for this model, the sweep needs {longest}; use a longer bench.corpus")
        return
    arr = (engine.ll.llama_token * len(corpus_tokens))(*corpus_tokens)
    while True:
        order, p = conn.recv()
        if order == "stop":
            break
        run_id = p["run_id"]
        if crash_at == p.get("point_id", run_id) and not p.get("attempt"):
            send("start", run_id=run_id)
            os.abort()
        try:
            def events(name):
                send(name, run_id=run_id)

            if run_image is None:
                engine.run(arr, p["x"], p["n_gen"], events)
            else:
                send("image", run_id=run_id, **run_image(p, events))
        except Exception as exc:
            send("point_error", run_id=run_id, error=str(exc))
        send("done", run_id=run_id)
    send("finished")
