"""Laws, report and archive through the real workflow on the tiny model; the page in headless Chromium."""

import io
import json
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from edgelaw.archive import bundle as archive
from edgelaw.core.errors import EdgelawError
from edgelaw.core.tables import LAWS
from edgelaw.core.layout import FIGURES

from conftest import TINY_QUALITY, tiny_config, vlm_model

pytestmark = pytest.mark.slow


def report_config(**extra):
    # task accuracy on a few items, so that the report's answer has something to rank
    config = tiny_config(quality=dict(TINY_QUALITY), tasks={"sets": {"arc_easy": {"items": 4}}}, **extra)
    config["quality"]["prompts"] = None
    config["quality"]["max_answer_tokens"] = 4
    config["bench"]["prompt_tokens"] = [16, 48, 96]
    config["models"]["vlm"] = vlm_model(64, schemes=["F16"])
    config["bench"]["resolution"] = {"long_sides": [64, 128, 192, 256, 384, 512, 768], "n_gen": 2}
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny experiment, on two device profiles that both fit this host, archived."""
    from conftest import Workflow

    wf = Workflow(tmp_path_factory.mktemp("report"))
    wf.write_config(report_config(archive={"stamp": "test"}))
    wf.run()
    wf.run("archive")
    return wf


def test_laws_are_fitted_with_intervals(finished):
    laws = pd.read_parquet(finished.workdir / "results/auto/laws.parquet")
    assert list(laws.columns) == LAWS.names
    slopes = laws[(laws["law"] == "cost_vs_tokens") & (laws["y"] == "cpu_core_s") & (laws["param"] == "slope")]
    assert set(slopes["quant"]) == {"F16", "Q8_0", "Q4_K_M"}
    assert slopes["value"].notna().all() and (slopes["ci_low"] <= slopes["value"]).all()  # tiny: ~0 per token
    assert (slopes["value"] <= slopes["ci_high"]).all() and (slopes["n"] == 6).all()
    assert all(len(json.loads(r)) == 6 for r in slopes["rows"])  # the run_ids it used
    bpw = laws[laws["law"].str.startswith("cost_vs_bpw") & (laws["y"] == "peak_rss_bytes") & (laws["param"] == "slope")]
    assert bpw["value"].iloc[0] > 0  # more bits, more memory
    trade = pd.read_parquet(finished.workdir / "results/auto/tradeoffs.parquet")
    assert (trade["roofline_fraction"] > 0).all() and trade["pareto_cpu"].any()
    comp = pd.read_parquet(finished.workdir / "results/auto/comparisons.parquet")
    pairs = set(zip(comp["baseline"], comp["variant"]))
    assert pairs == {("tiny/F16", "tiny/Q8_0"), ("tiny/F16", "tiny/Q4_K_M")}  # the defaults this ladder has
    mem = comp[(comp["variant"] == "tiny/Q4_K_M") & (comp["metric"] == "peak_rss_bytes")].iloc[0]
    assert mem["change_pct"] < 0
    host = json.loads((finished.workdir / "results/auto/host.json").read_text())
    assert host["memory_bandwidth"]["copy_gb_s"] > 0.5


def test_report_has_every_figure_and_a_summary(finished):
    out = finished.workdir / "results/auto/report"
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000 and (out / f"{name}.svg").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "Cost is linear in prompt tokens" in summary and "tiny" in summary and "Q4_K_M vs" in summary
    assert "vlm/F16, main series: CPU core-seconds is flat above" in summary and "the clamp is at 50,176 px" in summary
    # the answer opens it, in a person's units
    assert summary.index("## Answer: the best model and scheme") < summary.index("## Host and runs")
    assert "![accuracy against energy per request](answer.png)" in summary and "peak memory (MB)" in summary


def test_the_page_opens_with_the_answer_and_every_figure_renders_in_chromium(finished, tmp_path):
    """Debian's chromium, started here and stopped by its pid: the answer section opens the page and shows
    in its first screen, every figure decodes and has a size, and the screenshot is a PNG with ink in it."""
    from PIL import Image

    from browser import Chromium

    width, height = 1280, 1400
    chrome = Chromium(tmp_path / "profile", width, height)
    try:
        chrome.open((finished.workdir / "results/auto/report/index.html").as_uri())
        chrome.evaluate("Promise.allSettled([...document.images].map(i => i.decode()))")
        images = chrome.evaluate("[...document.images].map(i => { const r = i.getBoundingClientRect(); "
                                 "return [i.alt, i.complete && i.naturalWidth > 0 && r.width > 0 && r.height > 0]; })")
        answer = chrome.evaluate("""(() => {
            const s = document.getElementById('answer');
            if (!s) return null;
            const r = s.getBoundingClientRect(), style = getComputedStyle(s);
            return {top: r.top, left: r.left, width: r.width, height: r.height, text: s.innerText,
                    visible: style.display !== 'none' && style.visibility === 'visible' && r.height > 0,
                    first: document.querySelector('section').id,
                    figure: !!s.querySelector('img[alt="answer"]')};
        })()""")
        links = chrome.evaluate("document.querySelectorAll('a[href], link[href], script[src]').length")
        title = chrome.evaluate("document.title")
        png = chrome.screenshot()
    finally:
        chrome.stop()
    assert chrome.proc.returncode is not None  # stopped
    assert sorted(alt for alt, _ in images) == sorted(FIGURES)
    assert all(ok for _, ok in images), images
    assert links == 0 and "edgelaw report" in title  # self-contained: nothing to break
    assert answer and answer["visible"] and answer["first"] == "answer" and answer["figure"]
    assert 0 <= answer["top"] < height / 4  # it opens the page
    assert "Best on this device: tiny/" in answer["text"] and "Why the runner-up lost:" in answer["text"]
    shot = Image.open(io.BytesIO(png))
    assert shot.format == "PNG" and shot.size == (width, height)
    box = (int(answer["left"]), int(answer["top"]), int(answer["left"] + answer["width"]), height)
    ink = shot.convert("L").crop(box).histogram()
    assert sum(ink[:128]) > 2000 and sum(1 for n in ink if n) > 50  # text and a figure, not a blank page


def test_archive_verifies_and_a_tampered_copy_does_not(finished, tmp_path):
    wd = finished.workdir
    path = wd / "results/archive/auto-test.tar.gz"
    manifest = archive.verify(path)
    names = set(manifest["files"])
    assert {"config/config.yaml", "environment/requirements.lock", "results/auto/host.json",
            "results/auto/laws.parquet", "results/auto/report/index.html"} <= names
    assert "results/quality/tiny/Q8_0.parquet" in names and "results/auto/runs/tiny/Q8_0/tokens.parquet" in names
    # A copy with one table changed but the old manifest.
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(path) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()
            if member.name == "results/auto/laws.parquet":
                data = data.replace(b"cost_vs_tokens", b"cost_vs_tokenz")
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(EdgelawError, match="results/auto/laws.parquet: sha256 mismatch"):
        archive.verify(tampered)
    cli = [sys.executable, "-m", "edgelaw", "verify"]
    assert subprocess.run([*cli, str(path)], capture_output=True).returncode == 0
    bad = subprocess.run([*cli, str(tampered)], capture_output=True, text=True)
    assert bad.returncode == 2 and "sha256 mismatch" in bad.stderr


def test_replay_refits_the_archived_laws(finished, tmp_path):
    from edgelaw.archive.replay import replay

    manifest = replay(finished.workdir / "results/archive/auto-test.tar.gz", tmp_path / "replay")
    assert manifest["device"] == "auto" and (tmp_path / "replay/results/auto/laws.parquet").exists()


def test_cross_device_merges_archives_of_two_devices(finished, tmp_path):
    from conftest import Workflow

    other = Workflow(tmp_path)
    x86 = report_config(device="x86", force_device=True, archive={"stamp": "test"})
    del x86["models"]["vlm"]  # the token sweeps are what the two devices share
    del x86["tasks"]
    x86["quality"] = {"enabled": False}
    other.write_config(x86)
    other.run("archive")
    archives = [finished.workdir / "results/archive/auto-test.tar.gz", tmp_path / "results/archive/x86-test.tar.gz"]
    cfg = report_config(cross_device={"archives": [str(a) for a in archives]})
    other.write_config(cfg)
    other.run("cross_device")
    merged = pd.read_parquet(tmp_path / "results/cross_device/tradeoffs.parquet")
    assert set(merged["device"]) == {"auto", "x86"}
    assert "CPU core-seconds per prompt token" in (tmp_path / "results/cross_device/summary.md").read_text()
