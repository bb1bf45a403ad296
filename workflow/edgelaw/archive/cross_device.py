"""Several devices' results merged into one cross-device report: a fleet's devices measured in this run,
and archives of devices measured elsewhere.

Each archive is verified and unpacked into a temporary folder (never trusted blindly), its
trade-off and law tables are tagged with the device they came from, and the merged tables, a figure
and a page are written to the output folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from edgelaw.archive.bundle import extract  # noqa: E402
from edgelaw.core.errors import EdgelawError  # noqa: E402
from edgelaw.report.figures import save  # noqa: E402
from edgelaw.report.page import markdown_table, write_html, write_summary  # noqa: E402
from edgelaw.core import layout, tables  # noqa: E402


def _tables(root: Path, device: str, files: set[str] | None, where: str) -> tuple[str, pd.DataFrame, pd.DataFrame, dict]:
    """One device's host record, trade-offs and laws, under `root` at their places in the layout."""
    host_json, trade_table, laws_table = (layout.fill(t, device=device) for t in (layout.HOST, layout.TRADEOFFS, layout.LAWS))
    wanted = {host_json, trade_table, laws_table}
    present = files if files is not None else {p for p in wanted if (root / p).is_file()}
    if missing := sorted(wanted - present):
        raise EdgelawError(f"{where}: lacks {missing}; archive a run that finished its laws job")
    host = json.loads((root / host_json).read_text())
    trade = pd.read_parquet(root / trade_table).assign(device=device)
    # An archive made before a column existed (e.g. the task accuracy's) has it empty here.
    for f in tables.TRADEOFFS:
        if f.name not in trade:
            trade[f.name] = False if str(f.type) == "bool" else None
    laws = pd.read_parquet(root / laws_table).assign(device=device)
    return device, trade, laws, host


def _load(archive: Path, tmp: Path) -> tuple[str, pd.DataFrame, pd.DataFrame, dict]:
    dest = tmp / archive.name
    manifest = extract(archive, dest)
    return _tables(dest, manifest.get("device"), set(manifest["files"]), str(archive))


def figure(trade: pd.DataFrame):
    metrics = [("cpu_core_s", "CPU core-seconds per run"), ("energy_j", "energy per run (J)"),
               ("decode_tps", "decode tokens/s"), ("peak_rss_bytes", "peak RSS (bytes)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(18, 4.2))
    for (device, model), g in trade.groupby(["device", "model"]):
        g = g.sort_values("bpw")
        for ax, (m, label) in zip(axes, metrics):
            ax.plot(g["bpw"], g[m], "o-", ms=4, label=f"{device}: {model}")
            ax.set_xlabel("bits per weight")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Across devices: cost against bits per weight at each device's reference prompt length")
    return fig


def cross_device(archives: list[Path], out_dir: Path, local: list[str] = (), root: Path = Path(".")) -> None:
    """Merge the devices measured here (`local`: their results under `root`, as a fleet's run leaves
    them) and the archives of devices measured elsewhere."""
    if len(archives) + len(local) < 1:
        raise EdgelawError("cross-device: give at least one archive or device")
    loaded = [_tables(root, device, None, f"device {device} (results/{device}/)") for device in local]
    with tempfile.TemporaryDirectory() as tmp:
        for archive in archives:
            loaded.append(_load(archive, Path(tmp)))
    devices = [d for d, *_ in loaded]
    if len(set(devices)) != len(devices):
        raise EdgelawError(f"cross-device: two results of the same device ({devices}); keep one per device (an "
                           "archive of a device this run measures too is one too many)")
    trade = pd.concat([t for _, t, _, _ in loaded], ignore_index=True)
    laws = pd.concat([law for _, _, law, _ in loaded], ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    prov = {"archives": [str(a) for a in archives], "measured_here": list(local), "devices": devices}
    tables.write(trade, tables.CROSS_DEVICE_TRADEOFFS, out_dir / Path(layout.CROSS_DEVICE_TRADEOFFS).name, prov)
    tables.write(laws, tables.CROSS_DEVICE_LAWS, out_dir / Path(layout.CROSS_DEVICE_LAWS).name, prov)
    save(figure(trade), str(out_dir / layout.CROSS_DEVICE_FIGURE))
    lines = ["# edgelaw: cross-device comparison", "", "Devices: " + ", ".join(
        f"{d} ({h['host'].get('cpu', '?')}, {h.get('power_source', '?')} power)" for d, _, _, h in loaded), ""]
    slopes = laws[(laws["law"] == "cost_vs_tokens") & (laws["param"] == "slope") & (laws["y"] == "cpu_core_s")]
    if len(slopes):
        lines += ["## CPU core-seconds per prompt token", "",
                  markdown_table(slopes.pivot_table(index=["model", "quant"], columns="device", values="value")
                                  .reset_index()), ""]
    cols = [c for c in ["device", "model", "quant", "bpw", "cpu_core_s", "energy_j", "decode_tps", "roofline_fraction",
                        "ppl"] if c in trade]
    lines += ["## Trade-offs", "", markdown_table(trade[cols]), ""]
    write_summary(out_dir / layout.SUMMARY_FILE, lines)
    write_html(out_dir / layout.HTML_FILE, lines, out_dir, "edgelaw: cross-device comparison", figures=[layout.CROSS_DEVICE_FIGURE])
