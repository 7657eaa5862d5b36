# Every target that needs the environment depends on `setup`, which is idempotent:
# a stamp file records the requirements it installed, so a second run is a no-op.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DS_ACCELERATOR ?= cpu
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import torch, torchvision, ray, deepspeed, s3fs, omegaconf, prometheus_client, crossnet_dist"
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: setup
	$(BIN)/python -m crossnet_dist.demo

clean:
	rm -rf runs .pytest_cache
