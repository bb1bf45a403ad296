"""A VLM's projector (mmproj) beside a loaded language model: one image and a question per run.

Runs go through llama.cpp's libmtmd as its own CLI does: `mtmd_tokenize` preprocesses the image
(resize to the family's grid, clamped between a minimum and a maximum token count) and splits the
prompt into text and image chunks; the image chunk is encoded by the vision tower, its embeddings are
decoded into the language model's KV cache, and the answer is generated greedily (an argmax over
llama.cpp's logits, read in place).
"""

from __future__ import annotations

import ctypes
import time

from edgelaw.core.llama import lib

class Projector:
    """libmtmd's context for one projector, bound to an Engine's model and context."""

    def __init__(self, engine, path: str, threads: int, max_tokens: int | None, min_tokens: int | None):
        from llama_cpp import mtmd_cpp

        self.mt, self.engine = mtmd_cpp, engine
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.n_threads = threads
        params.print_timings = False
        params.warmup = False  # the sweep has its own warm-up run
        params.image_max_tokens = max_tokens or -1
        params.image_min_tokens = min_tokens or -1
        self.ctx = mtmd_cpp.mtmd_init_from_file(path.encode(), engine.model, params)
        if not self.ctx:
            raise RuntimeError(f"libmtmd could not load the projector {path} for this language model")
        if not mtmd_cpp.mtmd_support_vision(self.ctx):
            raise RuntimeError(f"the projector {path} has no vision encoder")
        self.marker = mtmd_cpp.mtmd_default_marker()
        ll = lib()
        self.batch = ll.llama_batch_init(1, 0, 1)

    def _tokenize(self, rgb: bytes, width: int, height: int, prompt: str):
        mt = self.mt
        data = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        bitmap = mt.mtmd_bitmap_init(width, height, data)
        chunks = mt.mtmd_input_chunks_init()
        text = prompt.replace("{image}", self.marker.decode()).encode()
        inp = mt.mtmd_input_text()
        inp.text, inp.text_len, inp.add_special, inp.parse_special = text, len(text), True, True
        bitmaps = (mt.mtmd_bitmap_p_ctypes * 1)(bitmap)
        rc = mt.mtmd_tokenize(self.ctx, chunks, ctypes.byref(inp), bitmaps, 1)
        mt.mtmd_bitmap_free(bitmap)
        if rc != 0:
            mt.mtmd_input_chunks_free(chunks)
            raise RuntimeError(f"libmtmd could not preprocess the {width}x{height} image (mtmd_tokenize returned {rc})")
        return chunks

    def _step(self, token: int, pos: int) -> None:
        ll, b = lib(), self.batch
        b.n_tokens = 1
        b.token[0], b.pos[0], b.n_seq_id[0], b.logits[0] = token, pos, 1, 1
        b.seq_id[0][0] = 0
        rc = ll.llama_decode(self.engine.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} (context full or out of memory)")

    def run(self, rgb: bytes, width: int, height: int, prompt: str, n_gen: int, events) -> dict:
        """Preprocess, encode and prefill the image and prompt, then decode `n_gen` tokens.

        `events(name)` marks start, first_token and end; the image's geometry comes back as a dict.
        """
        mt, ll, eng = self.mt, lib(), self.engine
        ll.llama_memory_clear(eng.mem, True)
        events("start")
        chunks = self._tokenize(rgb, width, height, prompt)
        try:
            info = {"image_tokens": 0, "n_prompt_tokens": 0, "encode_s": 0.0}
            n_past = ll.llama_pos(0)
            n_chunks = mt.mtmd_input_chunks_size(chunks)
            for i in range(n_chunks):
                chunk = mt.mtmd_input_chunks_get(chunks, i)
                info["n_prompt_tokens"] += mt.mtmd_input_chunk_get_n_tokens(chunk)
                if mt.mtmd_input_chunk_get_type(chunk) == mt.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    info.update(self._image(chunk, n_past))
                else:
                    rc = mt.mtmd_helper_eval_chunk_single(self.ctx, eng.ctx, chunk, n_past.value, 0, eng.n_batch,
                                                          i == n_chunks - 1, ctypes.byref(n_past))
                    if rc != 0:
                        raise RuntimeError(f"libmtmd could not decode the prompt text (returned {rc})")
        finally:
            mt.mtmd_input_chunks_free(chunks)
        tok = eng.greedy()
        events("first_token")
        pos = n_past.value
        for _ in range(n_gen):
            self._step(tok, pos)
            pos += 1
            tok = eng.greedy()
        events("end")
        return info

    def _image(self, chunk, n_past) -> dict:
        mt, eng = self.mt, self.engine
        image = mt.mtmd_input_chunk_get_tokens_image(chunk)
        t0 = time.monotonic()
        rc = mt.mtmd_encode_chunk(self.ctx, chunk)
        if rc != 0:
            raise RuntimeError(f"the vision encoder failed on the image (mtmd_encode_chunk returned {rc}; out of memory?)")
        encode_s = time.monotonic() - t0
        embd = mt.mtmd_get_output_embd(self.ctx)
        rc = mt.mtmd_helper_decode_image_chunk(self.ctx, eng.ctx, chunk, embd, n_past.value, 0, eng.n_batch,
                                               ctypes.byref(n_past), mt.mtmd_helper_post_decode_callback(), None)
        if rc != 0:
            raise RuntimeError(f"could not decode the image's embeddings into the language model (returned {rc})")
        return {
            "image_tokens": int(mt.mtmd_image_tokens_get_n_tokens(image)),
            "grid_x": int(mt.mtmd_image_tokens_get_nx(image)),
            "grid_y": int(mt.mtmd_image_tokens_get_ny(image)),
            "encode_s": encode_s,
        }
