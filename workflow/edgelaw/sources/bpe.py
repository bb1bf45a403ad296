"""A small byte-level BPE tokenizer (GPT-2 style) trained on the shipped corpus.

The synthetic model source needs a real tokenizer that llama.cpp can load without any download.
The trained vocabulary ships as data/bpe_tokenizer.json; `python scripts/make_tokenizer.py` regenerates it.
"""

from __future__ import annotations
from edgelaw.data import shipped

import json
import re
from collections import Counter
from functools import lru_cache

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Close to GPT-2's pre-tokenizer (llama.cpp pre-type "gpt-2"), with `re` classes for letters.
_PRETOKENIZE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train(text: str, vocab_size: int) -> dict:
    """Learn merges until the vocabulary (bytes + merges + specials) reaches vocab_size."""
    enc = bytes_to_unicode()
    words = Counter(
        tuple(enc[b] for b in piece.encode("utf-8")) for piece in _PRETOKENIZE.findall(text)
    )
    tokens = [enc[b] for b in range(256)]
    merges: list[tuple[str, str]] = []
    n_merges = vocab_size - len(tokens) - len(SPECIAL_TOKENS)
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        tokens.append(best[0] + best[1])
        words = Counter({_merge(w, best): c for w, c in words.items()})
    return {"tokens": tokens + SPECIAL_TOKENS, "merges": [f"{a} {b}" for a, b in merges]}


def load_shipped() -> dict:
    return json.loads(shipped("bpe_tokenizer.json").read_text())
