# Two entry points: `make run` (set up, then the default pipeline) and `make test` (set up, then the suite).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-12)
CORES ?= 2
# llama-cpp-python compiles llama.cpp on install; use every core for it (pip caches the wheel).
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: setup run test lint clean browser slurm

setup: $(STAMP)

$(STAMP):
	@$(PYTHON) --version >/dev/null 2>&1 || { echo "edgelaw needs $(PYTHON) (Python 3.11): install it or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@echo "installing pinned requirements (llama-cpp-python compiles llama.cpp the first time: several minutes)"
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

run: setup
	$(BIN)/snakemake --cores $(CORES)

test: setup browser slurm
	$(BIN)/python -m pytest -q

# The report test starts headless Chromium itself and screenshots the HTML page (Debian's chromium).
browser:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the report test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The cluster test starts a one-node SLURM itself (Debian's slurm-wlm and munge; no slurmdbd).
slurm:
	@command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null || { \
	  echo "installing Debian's slurm-wlm and munge for the cluster test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq slurm-wlm munge >/dev/null; }

lint: setup
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/snakefmt --check .

clean:
	rm -rf results resources .snakemake
