"""Laws, report and archive through the real workflow on the tiny model; the page in headless Chromium."""

import io
import json
import shutil
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
    config = tiny_config(quality=dict(TINY_QUALITY), **extra)
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
    assert "vlm/F16, main series: cpu_core_s is flat above" in summary and "the clamp is at 50,176 px" in summary


def test_the_page_loads_in_chromium_with_every_figure(finished):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (make test does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((finished.workdir / "results/auto/report/index.html").as_uri())
        images = driver.execute_script(
            "return [...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        links = driver.execute_script("return [...document.querySelectorAll('a[href], link[href], script[src]')].length")
        assert sorted(alt for alt, _ in images) == sorted(FIGURES)
        assert all(ok for _, ok in images), images
        assert links == 0  # self-contained: nothing to break
        assert "edgelaw report" in driver.title
    finally:
        driver.quit()


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
