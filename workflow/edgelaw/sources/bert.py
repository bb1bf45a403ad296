"""A BERT-family sentence encoder in safetensors, converted to a llama.cpp BERT GGUF without torch.

It writes what llama.cpp's own converter (convert_hf_to_gguf.py, class BertModel) writes for such a
model, and what llama.cpp's BERT loader reads:

- the weights, renamed to llama.cpp's BERT names by the `gguf` package's own map (`token_embd`,
  `position_embd`, `token_types`, `token_embd_norm`, `blk.N.attn_q/k/v`, `attn_output`,
  `attn_output_norm`, `ffn_up`, `ffn_down`, `layer_output_norm`), all F32 (an F16 source is widened,
  which is exact); the pooler and masked-LM heads are dropped, as llama.cpp's converter drops them;
- the WordPiece vocabulary as tokenizer model "bert": a word-initial piece gets llama.cpp's phantom
  space (U+2581) in front, a continuation drops its "##", special tokens stay as they are; the special
  ids ([CLS] as BOS, [SEP] as EOS and separator, [UNK], [PAD], [MASK]) and the normaliser's lowercase
  and accent stripping;
- the hyperparameters, non-causal attention, the token-type count and the pooling type of the
  sentence-transformers Pooling module (mean for all-MiniLM-L6-v2).

The tensors are read through safetensors' numpy API, one at a time. A directory without safetensors,
an architecture other than BERT, or a vocabulary that does not match the weights stops with the file
and the fix named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.sources.encoder import CHOOSE

# The transformers classes whose weights are a plain BERT encoder (llama.cpp's BertModel converts these
# and a classification head, which a sentence encoder does not have).
ARCHITECTURES = ("BertModel", "BertForMaskedLM")
# Weights llama.cpp's BERT graph does not use: dropped, as llama.cpp's converter drops them.
UNUSED_PREFIXES = ("pooler.", "cls.predictions", "cls.seq_relationship")
UNUSED_NAMES = ("embeddings.position_ids",)
# sentence-transformers modules: the encoder, its pooling and a normalisation are what llama.cpp runs.
MODULES = ("Transformer", "Pooling", "Normalize")
POOLING = {"pooling_mode_mean_tokens": "MEAN", "pooling_mode_cls_token": "CLS", "pooling_mode_lasttoken": "LAST"}
PHANTOM = "\u2581"
# llama.cpp reads these (llama-vocab.cpp); the gguf package 0.19.0 has no writer method for them yet.
KEY_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"
KEY_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"
SPECIALS = ("cls", "sep", "unk", "pad", "mask")


def _gguf():
    import gguf

    return gguf


def _json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EdgelawError(f"{what}: {path} is not valid JSON ({exc}); take the file again from the model's source") from None


def _optional_json(path: Path, what: str) -> dict:
    return _json(path, what) if path.is_file() else {}


def required_tensors(n_layer: int) -> list[str]:
    """What llama.cpp's BERT loader needs (src/models/bert.cpp: every tensor created without TENSOR_NOT_REQUIRED)."""
    names = ["token_embd.weight", "position_embd.weight", "token_embd_norm.weight", "token_embd_norm.bias"]
    for i in range(n_layer):
        names += [f"blk.{i}.{t}" for t in ("attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                           "attn_output_norm.weight", "attn_output_norm.bias", "ffn_up.weight",
                                           "ffn_down.weight", "layer_output_norm.weight", "layer_output_norm.bias")]
    return names


def check_config(model_dir: Path, what: str) -> dict:
    """config.json of a BERT encoder that llama.cpp's BERT graph computes as transformers does."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise EdgelawError(f"{what}: {model_dir} has no config.json, so its architecture is unknown; {CHOOSE}")
    config = _json(path, what)
    archs = config.get("architectures") or []
    if not any(a in ARCHITECTURES for a in archs) or config.get("model_type", "bert") != "bert":
        declared = ", ".join(archs) or f"model_type {config.get('model_type')!r}"
        raise EdgelawError(
            f"{what}: {path} declares {declared}, an architecture edgelaw's converter does not know (it converts "
            f"BERT: {', '.join(ARCHITECTURES)}); {CHOOSE}"
        )
    for key, wanted in (("position_embedding_type", "absolute"), ("hidden_act", "gelu")):
        if config.get(key, wanted) != wanted:
            raise EdgelawError(f"{what}: {path} has {key} {config[key]!r}; llama.cpp's BERT graph computes "
                               f"{wanted!r} only; {CHOOSE}")
    return config


def safetensors_files(model_dir: Path, what: str) -> list[Path]:
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        others = sorted(p.name for p in model_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".h5", ".onnx"))
        seen = f" (it has {', '.join(others)}: edgelaw reads no pickled or other formats)" if others else ""
        raise EdgelawError(
            f"{what}: {model_dir} holds no .safetensors weights{seen}; {CHOOSE}, or convert the weights to "
            "model.safetensors first"
        )
    return files


def _tensor_index(files: list[Path]) -> dict[str, tuple[Path, list[int], str]]:
    """Every tensor of the safetensors files: name -> (file, shape, dtype), read from the headers only."""
    from safetensors import safe_open

    index = {}
    for path in files:
        with safe_open(str(path), framework="numpy") as f:
            for name in f.keys():
                sl = f.get_slice(name)
                index[name] = (path, list(sl.get_shape()), sl.get_dtype())
    return index


def _hf_name(name: str) -> str:
    """A checkpoint's tensor name as llama.cpp's converter reads it (BertModel.filter_tensors)."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    if name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    return name


def tensor_plan(index: dict, n_layer: int, what: str) -> list[tuple[str, str]]:
    """(GGUF name, checkpoint name) of every tensor to write, in checkpoint order; raise if llama.cpp's BERT
    needs a tensor that is not there, or the checkpoint has one that no BERT name fits."""
    gguf = _gguf()
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    plan, unknown = [], []
    for name in index:
        hf = _hf_name(name)
        if hf in UNUSED_NAMES or hf.startswith(UNUSED_PREFIXES):
            continue
        target = names.get_name(hf, try_suffixes=(".weight", ".bias"))
        if target is None:
            unknown.append(name)
        else:
            plan.append((target, name))
    files = sorted({str(p.name) for p, _, _ in index.values()})
    if unknown:
        raise EdgelawError(
            f"{what}: {', '.join(files)} has tensors no BERT name fits ({', '.join(unknown[:4])}"
            f"{', ...' if len(unknown) > 4 else ''}): not a BERT encoder; {CHOOSE}"
        )
    missing = sorted(set(required_tensors(n_layer)) - {t for t, _ in plan})
    if missing:
        raise EdgelawError(
            f"{what}: {', '.join(files)} lacks tensors llama.cpp's BERT needs ({', '.join(missing[:4])}"
            f"{', ...' if len(missing) > 4 else ''}); the weights are incomplete or not BERT's: {CHOOSE}"
        )
    return plan


def _special_names(model_dir: Path, what: str) -> dict[str, str]:
    """The special tokens' texts ([CLS], [SEP], ...) as the tokenizer's files name them."""
    names = {"cls": "[CLS]", "sep": "[SEP]", "unk": "[UNK]", "pad": "[PAD]", "mask": "[MASK]"}
    for file in ("special_tokens_map.json", "tokenizer_config.json"):
        data = _optional_json(model_dir / file, what)
        for typ in SPECIALS:
            entry = data.get(f"{typ}_token")
            entry = entry.get("content") if isinstance(entry, dict) else entry
            if isinstance(entry, str):
                names[typ] = entry
    return names


def read_vocab(model_dir: Path, what: str) -> tuple[dict[int, str], set[int], str]:
    """The WordPiece vocabulary (id -> piece), the ids of special tokens, and the file it came from.

    tokenizer.json's WordPiece model is read where there is one, vocab.txt otherwise; where both are,
    they must agree token for token."""
    tokenizer_json, vocab_txt = model_dir / "tokenizer.json", model_dir / "vocab.txt"
    vocab: dict[int, str] = {}
    special: set[int] = set()
    source = None
    if tokenizer_json.is_file():
        tok = _json(tokenizer_json, what)
        model = tok.get("model") or {}
        if model.get("type") != "WordPiece":
            raise EdgelawError(
                f"{what}: {tokenizer_json} holds a {model.get('type')!r} tokenizer, not BERT's WordPiece; {CHOOSE}"
            )
        vocab = {int(i): t for t, i in model["vocab"].items()}
        for added in tok.get("added_tokens", []):
            vocab[int(added["id"])] = added["content"]
            if added.get("special"):
                special.add(int(added["id"]))
        source = tokenizer_json
    if vocab_txt.is_file():
        lines = vocab_txt.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        from_txt = dict(enumerate(lines))
        if source is None:
            vocab, source = from_txt, vocab_txt
        elif from_txt != vocab:
            ids = sorted(set(from_txt) | set(vocab))
            first = next(i for i in ids if from_txt.get(i) != vocab.get(i))
            raise EdgelawError(
                f"{what}: vocabulary mismatch: {vocab_txt} ({len(from_txt)} tokens) and {tokenizer_json} "
                f"({len(vocab)} tokens) differ first at id {first} ({from_txt.get(first)!r} against "
                f"{vocab.get(first)!r}); they are from different models: take both from the same model, or remove "
                "the stale one"
            )
    if source is None:
        raise EdgelawError(f"{what}: {model_dir} has neither tokenizer.json nor vocab.txt, so its vocabulary is "
                           f"unknown; {CHOOSE}")
    names = _special_names(model_dir, what)
    by_text = {t: i for i, t in vocab.items()}
    for typ, text in names.items():
        if text not in by_text:
            raise EdgelawError(f"{what}: vocabulary mismatch: {source} has no {typ} token {text!r}, which BERT's "
                               f"tokenizer needs; take the tokenizer files from the same model as the weights")
        special.add(by_text[text])
    return vocab, special, str(source)


def _pooling(model_dir: Path, what: str) -> tuple[str, bool]:
    """The pooling of the sentence-transformers Pooling module, and whether the model normalises."""
    modules_json = model_dir / "modules.json"
    if not modules_json.is_file():
        raise EdgelawError(
            f"{what}: {model_dir} has no modules.json: not a sentence-transformers model, so how it pools token "
            f"vectors into a sentence vector is unknown; {CHOOSE}"
        )
    modules = _json(modules_json, what)
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if other := [k for k in kinds if k not in MODULES]:
        raise EdgelawError(f"{what}: {modules_json} has a {other[0]} module, which llama.cpp cannot run (it runs "
                           f"{', '.join(MODULES)}); {CHOOSE}")
    pool = next((m for m, k in zip(modules, kinds) if k == "Pooling"), None)
    if pool is None:
        raise EdgelawError(f"{what}: {modules_json} has no Pooling module; {CHOOSE}")
    config_path = model_dir / pool.get("path", "") / "config.json"
    config = _optional_json(config_path, what)
    chosen = [mode for key, mode in POOLING.items() if config.get(key)]
    if config.get("pooling_mode") and not chosen:
        chosen = [str(config["pooling_mode"]).upper().replace("LASTTOKEN", "LAST")]
    if len(chosen) != 1 or chosen[0] not in POOLING.values():
        raise EdgelawError(f"{what}: {config_path} asks for pooling {chosen or 'none'}; llama.cpp pools by one of "
                           f"mean, cls or last token; {CHOOSE}")
    return chosen[0], "Normalize" in kinds


def _normaliser(model_dir: Path, what: str) -> tuple[bool, bool]:
    """(lowercase, strip accents) as the tokenizer (and sentence-transformers' do_lower_case) apply them."""
    tok = _optional_json(model_dir / "tokenizer.json", what).get("normalizer") or {}
    parts = tok.get("normalizers", [tok]) if tok.get("type") == "Sequence" else [tok]
    bert = next((n for n in parts if n.get("type") == "BertNormalizer"), None)
    if bert is not None:
        lower, strip = bool(bert.get("lowercase", True)), bert.get("strip_accents")
    else:
        config = _optional_json(model_dir / "tokenizer_config.json", what)
        lower, strip = bool(config.get("do_lower_case", True)), config.get("strip_accents")
    strip = lower if strip is None else bool(strip)
    if _optional_json(model_dir / "sentence_bert_config.json", what).get("do_lower_case"):
        lower = True
    return lower, strip


def max_seq_length(model_dir: Path, config: dict, what: str) -> int:
    """The tokens a text keeps, [CLS] and [SEP] included: sentence-transformers' max_seq_length, else the
    tokenizer's model_max_length, at most the position embeddings."""
    limit = config["max_position_embeddings"]
    st = _optional_json(model_dir / "sentence_bert_config.json", what).get("max_seq_length")
    tk = _optional_json(model_dir / "tokenizer_config.json", what).get("model_max_length")
    given = st or (tk if isinstance(tk, int) and tk < 10**6 else None)
    return min(int(given or limit), limit)


def convert(model_dir: str | os.PathLike, out: str | os.PathLike, what: str, name: str) -> dict:
    """Write the GGUF of the encoder in `model_dir` to `out`; return what its record says about it."""
    gguf = _gguf()
    model_dir = Path(model_dir)
    config = check_config(model_dir, what)
    files = safetensors_files(model_dir, what)
    index = _tensor_index(files)
    n_layer = int(config["num_hidden_layers"])
    plan = tensor_plan(index, n_layer, what)
    vocab, special, vocab_file = read_vocab(model_dir, what)
    embd_name = next(src for dst, src in plan if dst == "token_embd.weight")
    rows = index[embd_name][1][0]
    declared = config.get("vocab_size", rows)
    if declared != rows or max(vocab) >= rows:
        raise EdgelawError(
            f"{what}: vocabulary mismatch: {vocab_file} has {len(vocab)} tokens (ids up to {max(vocab)}), "
            f"{model_dir / 'config.json'} says vocab_size {declared}, and {index[embd_name][0].name} embeds {rows} "
            "tokens; the tokenizer and the weights come from different models: take both from the same model"
        )
    pooling, normalize = _pooling(model_dir, what)
    lower, strip = _normaliser(model_dir, what)
    names = _special_names(model_dir, what)
    by_text = {t: i for i, t in vocab.items()}

    # llama.cpp's converter: an id the vocabulary does not name is a padding token, unused.
    tokens, types = [], []
    for i in range(rows):
        if i not in vocab:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in special:
            tokens.append(vocab[i])
            types.append(gguf.TokenType.CONTROL)
        else:
            piece = vocab[i]
            tokens.append(piece[2:] if piece.startswith("##") else PHANTOM + piece)
            types.append(gguf.TokenType.NORMAL)

    writer = gguf.GGUFWriter(str(out), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_file_type(int(gguf.LlamaFileType.ALL_F32))
    writer.add_block_count(n_layer)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType[pooling])
    writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")  # llama.cpp takes its WordPiece pre-tokenizer whatever this says
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_bos_token_id(by_text[names["cls"]])
    writer.add_eos_token_id(by_text[names["sep"]])
    writer.add_sep_token_id(by_text[names["sep"]])
    writer.add_unk_token_id(by_text[names["unk"]])
    writer.add_pad_token_id(by_text[names["pad"]])
    writer.add_mask_token_id(by_text[names["mask"]])
    writer.add_add_bos_token(True)
    writer.add_add_sep_token(True)
    writer.add_bool(KEY_LOWERCASE, lower)
    writer.add_bool(KEY_STRIP_ACCENTS, strip)

    for dst, src in plan:
        path, shape, _ = index[src]
        writer.add_tensor_info(dst, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    n_params = 0
    from safetensors import safe_open

    handles = {p: safe_open(str(p), framework="numpy") for p in files}
    for dst, src in plan:
        path, shape, dtype = index[src]
        try:
            data = handles[path].get_tensor(src)
        except Exception as exc:  # safetensors' numpy API cannot give e.g. BF16
            raise EdgelawError(f"{what}: {path.name}: cannot read tensor {src} ({dtype}) without torch ({exc}); "
                               "use a model whose weights are F32 or F16") from None
        if data.dtype.kind != "f":
            raise EdgelawError(f"{what}: {path.name}: tensor {src} is {dtype}, not floating point; {CHOOSE}")
        writer.write_tensor_data(np.ascontiguousarray(data, dtype=np.float32))
        n_params += data.size
    writer.close()
    return {
        "architectures": config.get("architectures"),
        "n_layer": n_layer,
        "n_embd": int(config["hidden_size"]),
        "n_vocab": rows,
        "n_params": int(n_params),
        "pooling": pooling.lower(),
        "normalize": normalize,
        "max_seq_length": max_seq_length(model_dir, config, what),
        "lowercase": lower,
        "strip_accents": strip,
        "vocab_file": Path(vocab_file).name,
        "weights": [p.name for p in files],
    }
