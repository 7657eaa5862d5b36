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

.PHONY: setup setup-runtime system-packages test demo bench bench-train bench-serve bench-load bench-quality gpu-bundle audit clean

setup: $(STAMP) $(EMOJI_TARBALLS) system-packages

# Debian packages the serving tests use: headless Chromium + chromedriver (driven by selenium from PyPI;
# never `npx playwright install`, which downloads browsers) and promtool (package prometheus).
# Skipped when already installed. The prometheus daemon the package may enable is stopped: only promtool is used.
SYSTEM_PACKAGES := chromium chromium-driver prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES) && \
		{ ! command -v systemctl >/dev/null || $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; }; }
	@command -v promtool >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/python -c "import torch, torchvision, ray, deepspeed, s3fs, omegaconf, prometheus_client, crossnet_dist"
	touch $(STAMP)

# A cluster node: the runtime stack and the package only (no test tools, no browser, no Prometheus).
setup-runtime:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . 2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/python -c "import torch, torchvision, ray, deepspeed, s3fs, omegaconf, prometheus_client, crossnet_dist"

# A package install (npm pack), not a run-time download; without npm only `emoji` is unavailable.
$(EMOJI_TARBALLS): | $(STAMP)
	$(BIN)/python -m crossnet_dist.data.npm_packages $(NPM_CACHE) || echo "warning: npm pack failed: the emoji data set needs npm (apt-get install npm)"

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# DEMO_STEPS: training steps (default: the demo's own, see crossnet_dist/demo.py)
demo: setup
	$(BIN)/python -m crossnet_dist.demo $(if $(DEMO_STEPS),--steps $(DEMO_STEPS))

# Serving: p50/p99 and throughput at 1/4/16 clients, batching on/off, vs the bare model (127.0.0.1 only).
bench-serve: setup
	$(BIN)/python bench/serve.py

# Distributed training: 1 vs 2 workers step time, ZeRO 0/2/3 per-rank memory (ratios vs baselines).
# A locust load test (bench/locustfile.py) against a local endpoint, bounded in time (127.0.0.1 only).
bench-load: setup
	$(BIN)/python bench/load_test.py

bench-train: setup
	$(BIN)/python bench/train_scaling.py

# One combined table of ratios vs baselines measured in the same run (~3-5 min on 2 CPUs): trainer overhead
# vs a bare loop, FLOP/s vs the mm peak, step optimisations (metric sync, channels_last, torch.compile),
# 1 vs 2 workers vs the scaling model, ZeRO memory, S3 loader vs training, Serve vs the bare model.
# BENCH_ARGS: --skip-memory (no ZeRO-2/3 runs), --skip-dist (no Ray), --skip-compile, --skip-loader, --skip-serve.
bench: setup
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# Time to quality: CrossNet vs CycleGAN on the emoji pairs (Ray Train + DeepSpeed, and a --local row) between
# doing nothing and the paired ceiling; each checkpoint scored on val, each run's best on val reported on test
# (~60 min on 2 CPUs; QUALITY_ARGS=--quick for a few minutes).
bench-quality: setup
	$(BIN)/python bench/quality.py $(QUALITY_ARGS)

# Known vulnerabilities of the pinned runtime requirements (queries PyPI's advisory data: needs the network).
audit: setup
	$(BIN)/pip-audit -r requirements.txt --progress-spinner off

clean:
	rm -rf runs .pytest_cache

# Wheels for bench/gpu_check.py on a GPU machine with only Python 3.12 + PyTorch and no package index
# (bench/gpu_bundle.txt says how to install them there). DeepSpeed ships as an sdist: built here, ops off.
GPU_BUNDLE := .gpu-bundle
gpu-bundle: setup
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)
	DS_BUILD_OPS=0 $(BIN)/pip wheel -q --no-deps --no-build-isolation -w $(GPU_BUNDLE) $$(grep -i '^deepspeed==' bench/gpu_bundle.txt) \
		2>&1 | sed '/^WARNING: Location/d'
	$(BIN)/pip download -q --dest $(GPU_BUNDLE) --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		$$(grep -v -i -e '^#' -e '^deepspeed==' bench/gpu_bundle.txt) 2>&1 | sed '/^WARNING: Location/d'
	@du -sh $(GPU_BUNDLE)
