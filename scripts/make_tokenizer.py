"""Regenerate the synthetic models' byte-level BPE vocabulary from the shipped corpus.

Run: python scripts/make_tokenizer.py   (the output, workflow/edgelaw/data/bpe_tokenizer.json, is committed;
this only documents its origin). Kept out of the library so that no job's code reads the corpus for it.
"""

import json

from edgelaw.data import shipped
from edgelaw.sources.bpe import train

if __name__ == "__main__":
    tok = train(shipped("corpus.txt").read_text(), vocab_size=1024)
    path = shipped("bpe_tokenizer.json")
    path.write_text(json.dumps(tok, ensure_ascii=False) + "\n")
    print(f"{len(tok['tokens'])} tokens, {len(tok['merges'])} merges -> {path}")
