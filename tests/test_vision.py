"""The VLM workload: the synthetic Qwen2-VL projector through libmtmd, the resolution sweep, the knee."""

import pandas as pd
import pytest

from edgelaw.measure import images
from edgelaw.measure.settings import Settings
from edgelaw.laws import derive as laws
from edgelaw.measure.controller import measure
from edgelaw.core.config import validate
from edgelaw.core.devices import resolve
from edgelaw.core.errors import EdgelawError
from edgelaw.sources.fetch import materialize, materialize_projector
from edgelaw.sources.synthetic_vision import write as write_projector

from conftest import ROOT, TINY_PROJECTOR, TINY_VLM, settled


@pytest.fixture(scope="module")
def vlm(tmp_path_factory):
    """The tiny VLM's language GGUF and its projector, fetched as the pipeline fetches them."""
    d = tmp_path_factory.mktemp("vlm")
    materialize("vlm", {"source": "synthetic", "synthetic": validate_model()["synthetic"]}, d / "base.gguf", d / "base.json")
    spec = validate_model()["mmproj"]
    materialize_projector("vlm", spec, d / "base.gguf", d / "mmproj.gguf", d / "mmproj.json")
    return d


def validate_model(**bench):
    config = validate({
        "models": {"vlm": {"source": "synthetic", "synthetic": dict(TINY_VLM),
                           "mmproj": {"source": "synthetic", "synthetic": dict(TINY_PROJECTOR)}}},
        "schemes": {"F16": {"ftype": "F16"}},
        "bench": {"repetitions": 2, "idle_seconds": 0.5, "settle_seconds": 0.05, **bench},
    })
    return config["models"]["vlm"] if not bench else config


def sweep(vlm, tmp_path, clamp, **resolution):
    config = validate_model(resolution={"n_gen": 4, **resolution})
    settings = Settings.from_config(config["bench"], "resolution")
    return measure(device="auto", profile=resolve("auto", str(ROOT)), model="vlm", quant="F16",
                   gguf=str(vlm / "base.gguf"), quant_meta={"bpw": 16.0}, workload="resolution", settings=settings,
                   threads=2, out_trace=str(tmp_path / f"trace-{clamp}.parquet"),
                   out_runs=str(tmp_path / f"runs-{clamp}.parquet"), provenance={}, mmproj=str(vlm / "mmproj.gguf"),
                   clamp={"image_max_tokens": clamp})


def test_images_are_preprocessed_to_the_family_grid_and_clamped(vlm, tmp_path):
    runs = settled(sweep(vlm, tmp_path, 64, long_sides=[64, 200, 1000], square=True))
    assert (runs["status"] == "ok").all() and len(runs) == 12
    saved = pd.read_parquet(tmp_path / "runs-64.parquet")
    assert saved["effective_pixels"].notna().all() and set(saved["image_series"]) == {"4:3", "1:1"}
    # Qwen2-VL: 14 px patches merged 2x2, so every token is a 28 px square of the resized image.
    assert (runs["effective_w"] % 28 == 0).all() and (runs["effective_h"] % 28 == 0).all()
    assert (runs["image_tokens"] == runs["effective_w"] * runs["effective_h"] // 784).all()
    assert (runs["image_tokens"] <= 64).all() and (runs["clamp_pixels"] == 64 * 784).all()
    big = runs[runs["nominal_w"] == 1000]
    assert (big["effective_pixels"] < big["x"] / 10).all()  # scaled down to the clamp
    assert (runs["n_prompt_tokens"] > runs["image_tokens"]).all()  # the question and chat frame around it
    assert (runs["cpu_core_s_counter"] > 0).all() and (runs["encode_s"] > 0).all()
    assert laws.at_tokens(runs, None) == 0  # a VLM-only experiment still fits its knee
    with pytest.raises(EdgelawError, match="no successful runs"):
        laws.at_tokens(runs.assign(status="error"), None)


def test_the_fitted_knee_lands_at_the_clamp_and_moves_with_it(vlm, tmp_path):
    sides = [96, 224, 288, 352, 448, 576, 768, 1024]
    knees = {}
    for clamp in (144, 256):
        runs = sweep(vlm, tmp_path, clamp, long_sides=sides, square=True)
        fits = laws.fit_all(runs, pd.DataFrame(), 0, 200, 0)
        k = fits[(fits["param"] == "knee") & (fits["y"] == "cpu_core_s")].set_index("law")["value"]
        knees[clamp] = k
        for series, g in runs.groupby("image_series"):
            knee = k[laws.knee_law(series)]
            # The clamp stops the token count at the first size it scales down (rounded to the 28 px
            # grid, so a little under the clamp): the knee lies between the last size below that
            # plateau and the first size on it, near clamp x 784 px.
            tokens = g.groupby("x")["image_tokens"].first()
            first_on = tokens[tokens == tokens.max()].index.min()
            last_below = tokens[tokens.index < first_on].index.max()
            assert 0.9 * last_below <= knee <= 1.1 * first_on, (clamp, series, knee, last_below, first_on)
            # and the plateau begins where the clamp says (its sizes bracket clamp x 784 px); no tighter
            # bound holds: between two grid sizes the fit has no data (clamp 144: 352² to 448², 1.1-1.8x)
            assert last_below < clamp * 784 * 1.25 and first_on > clamp * 784 * 0.8, (clamp, series)
    assert (knees[256] > knees[144]).all()


def test_a_projector_for_another_language_model_is_refused(vlm, tmp_path):
    other = tmp_path / "mmproj-128.gguf"
    write_projector({**TINY_PROJECTOR, "patch_size": 14, "image_size": 560, "seed": 0}, 128, other)
    with pytest.raises(EdgelawError, match=r"model vlm: the projector .*mismatch/mmproj.gguf emits 128-wide .* is 256 wide: they are not a pair"):
        sweep(_with_projector(vlm, other, tmp_path), tmp_path, 64)
    spec = {"source": "synthetic", "synthetic": {**validate_model()["mmproj"]["synthetic"], "projection_dim": 128}}
    with pytest.raises(EdgelawError, match="model vlm: the projector .* not a pair"):
        materialize_projector("vlm", spec, vlm / "base.gguf", tmp_path / "p.gguf", tmp_path / "p.json")
    assert not (tmp_path / "p.gguf").exists()


def _with_projector(vlm, projector, tmp_path):
    d = tmp_path / "mismatch"
    d.mkdir()
    (d / "base.gguf").symlink_to(vlm / "base.gguf")
    (d / "mmproj.gguf").symlink_to(projector)
    return d


def test_an_unreadable_image_stops_before_any_run(vlm, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_text("not a picture")
    with pytest.raises(EdgelawError, match=r"bench.resolution.image: .*photo.png is not a readable image"):
        sweep(vlm, tmp_path, 64, image=str(bad), long_sides=[64])
    assert not (tmp_path / "runs-64.parquet").exists()


def test_a_user_image_is_rendered_at_every_size(tmp_path):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.fromarray(images.scene(300, 200)).save(path)
    content = images.load(str(path))
    for series, w, h in images.sizes([64, 500], "4:3", square=True):
        assert len(images.render(content, w, h)) == w * h * 3
    assert images.sizes([64], "4:3", square=True) == [("4:3", 64, 48), ("1:1", 64, 64)]
    assert images.sizes([64], "1:1", square=True) == [("1:1", 64, 64)]


def test_bad_sizes_and_clamps_are_config_errors():
    with pytest.raises(EdgelawError, match=r"bench.resolution.long_sides.0: 0 is less than the minimum of 1"):
        validate_model(resolution={"long_sides": [0, 64]})
    with pytest.raises(EdgelawError, match="size below 1 px"):
        images.sizes([0], "4:3", True)
    with pytest.raises(EdgelawError, match="models.tiny.image_max_tokens: only a VLM has an image clamp"):
        validate({"models": {"tiny": {"source": "file", "path": "x.gguf", "image_max_tokens": 64}},
                  "schemes": {"F16": {"ftype": "F16"}}})
    with pytest.raises(EdgelawError, match="models.tiny.workloads: resolution needs a vision projector"):
        validate({"models": {"tiny": {"source": "file", "path": "x.gguf", "workloads": ["resolution"]}},
                  "schemes": {"F16": {"ftype": "F16"}}})
