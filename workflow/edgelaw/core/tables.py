"""The Parquet contracts (docs/contracts.md): fixed schemas, provenance in the file metadata."""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgelaw.core.atomic import atomic_path

SAMPLES = pa.schema([
    ("run_id", pa.string()),
    ("t_s", pa.float64()),
    ("cpu_proc_pct", pa.float64()),
    ("cpu_sys_pct", pa.float64()),
    ("cpu_other_pct", pa.float64()),
    ("steal_pct", pa.float64()),
    ("rss_bytes", pa.int64()),
    ("mem_sys_used_bytes", pa.int64()),
    ("power_w", pa.float64()),
    ("energy_j", pa.float64()),
    ("phase", pa.string()),
])

RUNS = pa.schema([
    ("run_id", pa.string()),
    ("device", pa.string()),
    ("model", pa.string()),
    ("quant", pa.string()),
    ("bpw", pa.float64()),
    ("workload", pa.string()),
    ("x", pa.int64()),
    ("n_gen", pa.int64()),
    ("rep", pa.int64()),
    ("n_threads", pa.int64()),
    ("t_start", pa.float64()),
    ("t_first_token", pa.float64()),
    ("t_end", pa.float64()),
    ("load_s", pa.float64()),
    ("ttft_s", pa.float64()),
    ("prefill_tps", pa.float64()),
    ("decode_tps", pa.float64()),
    ("cpu_core_s", pa.float64()),
    ("cpu_core_s_prefill", pa.float64()),
    ("cpu_core_s_decode", pa.float64()),
    ("cpu_core_s_counter", pa.float64()),
    ("cpu_sys_core_s", pa.float64()),
    ("mem_gb_s", pa.float64()),
    ("mem_sys_gb_s", pa.float64()),
    ("peak_rss_bytes", pa.int64()),
    ("energy_j", pa.float64()),
    ("energy_dyn_j", pa.float64()),
    ("energy_prefill_j", pa.float64()),
    ("energy_decode_j", pa.float64()),
    ("energy_source", pa.string()),
    ("idle_cpu_sys_pct", pa.float64()),
    ("idle_mem_sys_used_bytes", pa.int64()),
    ("idle_power_w", pa.float64()),
    ("sample_hz", pa.float64()),
    ("n_samples", pa.int64()),
    ("status", pa.string()),
    ("error", pa.string()),
    # the host beside the run: other processes, stolen time, the busiest process; which attempt at the point
    ("attempt", pa.int64()),
    ("other_core_s", pa.float64()),
    ("other_cores", pa.float64()),
    ("other_cores_peak", pa.float64()),
    ("steal_core_s", pa.float64()),
    ("busiest_pid", pa.int64()),
    ("busiest_name", pa.string()),
    ("busiest_cores", pa.float64()),
    # every prefilled position: the prompt's tokens, or an image's tokens and the text around them
    ("n_prompt_tokens", pa.int64()),
    # the resolution workload (null for the token sweep): x is the nominal pixel count
    ("image_series", pa.string()),
    ("nominal_w", pa.int64()),
    ("nominal_h", pa.int64()),
    ("effective_w", pa.int64()),
    ("effective_h", pa.int64()),
    ("effective_pixels", pa.int64()),
    ("image_tokens", pa.int64()),
    ("image_max_tokens", pa.int64()),
    ("clamp_pixels", pa.int64()),
    ("encode_s", pa.float64()),
])

QUALITY = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("bpw", pa.float64()),
    ("n_ctx", pa.int64()),
    ("n_chunks", pa.int64()),
    ("n_tokens", pa.int64()),
    ("ppl", pa.float64()),
    ("ppl_se", pa.float64()),
    ("base_ppl", pa.float64()),
    ("kld_mean", pa.float64()),
    ("kld_mean_se", pa.float64()),
    ("kld_median", pa.float64()),
    ("kld_p99", pa.float64()),
    ("kld_max", pa.float64()),
    ("top1_pct", pa.float64()),
    ("top1_pct_se", pa.float64()),
    ("top_k", pa.int64()),
    ("n_prompts", pa.int64()),
    ("sem_ref", pa.float64()),
    ("sem_ref_untrimmed", pa.float64()),
    ("sem_base", pa.float64()),
    ("sem_base_untrimmed", pa.float64()),
    ("sem_ref_of_base", pa.float64()),
    ("trim", pa.float64()),
    ("answer_tokens_mean", pa.float64()),
    ("score_seconds", pa.float64()),
    ("answer_seconds", pa.float64()),
])

ANSWERS = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("prompt_id", pa.string()),
    ("answer", pa.string()),
    ("n_tokens", pa.int64()),
    ("prompt_tokens", pa.int64()),
    ("sim_ref", pa.float64()),
    ("sim_base", pa.float64()),
    ("kept_ref", pa.bool_()),
    ("kept_base", pa.bool_()),
])

TASKS = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("bpw", pa.float64()),
    ("task", pa.string()),
    ("metric", pa.string()),
    ("headline", pa.bool_()),
    ("value", pa.float64()),
    ("stderr", pa.float64()),
    ("n_items", pa.int64()),
    ("n_docs", pa.int64()),
    ("shots", pa.int64()),
    ("split", pa.string()),
    ("lm_eval_split", pa.string()),
    ("fewshot_split", pa.string()),
    ("source", pa.string()),
    ("licence", pa.string()),
    ("notes", pa.string()),
    ("seconds", pa.float64()),
])

TASK_ITEMS = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("task", pa.string()),
    ("item", pa.int64()),
    ("gold", pa.int64()),
    ("pred", pa.int64()),
    ("pred_norm", pa.int64()),
    ("loglik", pa.string()),
    ("n_tokens", pa.string()),
    ("answer", pa.string()),
    ("strict", pa.string()),
    ("flexible", pa.string()),
    ("acc", pa.float64()),
    ("acc_norm", pa.float64()),
    ("em_strict", pa.float64()),
    ("em_flexible", pa.float64()),
])

# A task metric's 0/1 column in the per-item table: the metric's own name, but lm-eval's names that hold commas.
ITEM_COLUMNS = {"exact_match,strict-match": "em_strict", "exact_match,flexible-extract": "em_flexible"}


def item_column(metric: str) -> str:
    return ITEM_COLUMNS.get(metric, metric)


LAWS = pa.schema([
    ("law", pa.string()),
    ("x", pa.string()),
    ("y", pa.string()),
    ("model", pa.string()),
    ("quant", pa.string()),
    ("kind", pa.string()),
    ("param", pa.string()),
    ("value", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("r2", pa.float64()),
    ("n", pa.int64()),
    ("rows", pa.string()),
    ("note", pa.string()),
])

TRADEOFFS = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("bpw", pa.float64()),
    ("cpu_core_s", pa.float64()),
    ("mem_gb_s", pa.float64()),
    ("energy_j", pa.float64()),
    ("peak_rss_bytes", pa.int64()),
    ("prefill_tps", pa.float64()),
    ("decode_tps", pa.float64()),
    ("n_runs", pa.int64()),
    ("x_ref", pa.int64()),
    ("weight_bytes", pa.int64()),
    ("roofline_tps", pa.float64()),
    ("roofline_fraction", pa.float64()),
    ("ppl", pa.float64()),
    ("ppl_se", pa.float64()),
    ("kld_mean", pa.float64()),
    ("top1_pct", pa.float64()),
    ("sem_ref", pa.float64()),
    ("sem_base", pa.float64()),
    ("task_acc", pa.float64()),
    ("task_acc_se", pa.float64()),
    ("pareto_cpu", pa.bool_()),
    ("pareto_memory", pa.bool_()),
    ("pareto_energy", pa.bool_()),
])

COMPARISONS = pa.schema([
    ("baseline", pa.string()),
    ("variant", pa.string()),
    ("metric", pa.string()),
    ("baseline_value", pa.float64()),
    ("variant_value", pa.float64()),
    ("change_pct", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("n_base", pa.int64()),
    ("n_variant", pa.int64()),
    ("method", pa.string()),
])

CROSSOVER = pa.schema([
    ("small_model", pa.string()),
    ("small_quant", pa.string()),
    ("small_bpw", pa.float64()),
    ("small_params", pa.int64()),
    ("small_weight_bytes", pa.int64()),
    ("large_model", pa.string()),
    ("large_quant", pa.string()),
    ("large_bpw", pa.float64()),
    ("large_params", pa.int64()),
    ("large_weight_bytes", pa.int64()),
    ("task", pa.string()),
    ("metric", pa.string()),
    ("n_items", pa.int64()),
    ("small_acc", pa.float64()),
    ("large_acc", pa.float64()),
    ("diff", pa.float64()),
    ("diff_se", pa.float64()),
    ("unpaired_se", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("verdict", pa.string()),
    ("note", pa.string()),
])

BOTTLENECK = pa.schema([
    ("model", pa.string()),
    ("quant", pa.string()),
    ("bpw", pa.float64()),
    ("n_params", pa.int64()),
    ("weight_bytes", pa.int64()),
    ("x", pa.int64()),
    ("n_runs", pa.int64()),
    ("decode_tps", pa.float64()),
    ("roofline_fraction", pa.float64()),
    ("roofline_fraction_se", pa.float64()),
    ("prefill_time_share", pa.float64()),
    ("prefill_time_share_se", pa.float64()),
    ("prefill_cpu_share", pa.float64()),
    ("prefill_cpu_share_se", pa.float64()),
])

# The cross-device report's tables: one device's table with the device each row came from.
DEVICE = pa.field("device", pa.string())
CROSS_DEVICE_TRADEOFFS = TRADEOFFS.append(DEVICE)
CROSS_DEVICE_LAWS = LAWS.append(DEVICE)

METADATA_KEY = b"edgelaw"


def write(df: pd.DataFrame, schema: pa.Schema, path: str | os.PathLike, provenance: dict) -> None:
    """Write `df` with exactly `schema`'s columns and types, atomically, with provenance metadata."""
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise ValueError(f"table for {path} lacks columns {missing}")
    _write(pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False), path, provenance)


def _write(table: pa.Table, path: str | os.PathLike, provenance: dict) -> None:
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def read_many(paths) -> pd.DataFrame:
    """Several tables of one kind as one frame (empty, without columns, when there are none)."""
    frames = [pd.read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def provenance(path: str | os.PathLike) -> dict:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(METADATA_KEY, b"{}"))
