# Every target that needs the environment depends on `setup`, which is idempotent:
# a stamp file records the requirements it installed, so a second run is a no-op.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# npm tarballs the `emoji` data set is built from (crossnet_dist/data/npm_packages.py pins them)
NPM_CACHE := .cache/npm
EMOJI_TARBALLS := $(NPM_CACHE)/emoji-datasource-google-16.0.0.tgz $(NPM_CACHE)/emoji-datasource-twitter-16.0.0.tgz
export DS_ACCELERATOR ?= cpu
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup test demo bench clean

setup: $(STAMP) $(EMOJI_TARBALLS)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/python -c "import torch, torchvision, ray, deepspeed, s3fs, omegaconf, prometheus_client, crossnet_dist"
	touch $(STAMP)

# A package install (npm pack), not a run-time download; without npm only `emoji` is unavailable.
$(EMOJI_TARBALLS): | $(STAMP)
	$(BIN)/python -m crossnet_dist.data.npm_packages $(NPM_CACHE) || echo "warning: npm pack failed: the emoji data set needs npm (apt-get install npm)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/python -m crossnet_dist.demo

clean:
	rm -rf runs .pytest_cache
