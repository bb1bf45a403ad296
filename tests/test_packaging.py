"""`pip install .` gives a working library anywhere: schemas and data ship inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    return next(out.glob("edgelaw-*.whl"))


def test_the_wheel_holds_every_module_schema_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {str(p.relative_to(ROOT / "workflow")) for p in (ROOT / "workflow/edgelaw").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    assert source - names == set()
    assert {"edgelaw/schemas/config.schema.yaml", "edgelaw/schemas/device.schema.yaml", "edgelaw/data/eval.txt"} <= names
    from edgelaw import __version__

    assert wheel.name.startswith(f"edgelaw-{__version__}-")  # one place for the version


def test_the_installed_wheel_validates_a_config_outside_the_checkout(wheel, tmp_path):
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    zipfile.ZipFile(wheel).extractall(site)
    # the dependencies from this venv (a plain path entry: its editable install of edgelaw is not seen)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(env / "bin" / "python")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no other copy of the library on the path
    where = subprocess.run([python, "-c", "import edgelaw; print(edgelaw.__file__)"], capture_output=True, text=True,
                           cwd=tmp_path, check=True, env=clean).stdout.strip()
    assert where.startswith(str(site))
    out = subprocess.run([python, "-m", "edgelaw", "validate-config", str(ROOT / "config/config.yaml")],
                         capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert out.returncode == 0 and "valid" in out.stdout, out.stderr


def test_the_conda_environment_pins_what_requirements_txt_pins():
    """envs/edgelaw.yaml repeats requirements.txt (Snakemake does not carry a `-r` file along with a conda
    environment), less Snakemake itself, which runs the rules rather than inside them; and neither pulls in
    a deep-learning framework."""
    import yaml

    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    env = yaml.safe_load((ROOT / "envs/edgelaw.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert sorted(pip) == sorted(p for p in pins if not p.startswith("snakemake"))
    assert not [p for p in pins + pip if p.split("=")[0].split("<")[0] in {"torch", "transformers", "sentence-transformers"}]
