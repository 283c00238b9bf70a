# genaug: `make pipeline` sets up and runs the pipeline on params.yaml; `make test` sets up and runs the tests.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The CPU build of PyTorch lies on disk here; GPU users install a CUDA build into .venv first (README).
TORCH ?= torch==2.13.0
# The DVC default remote: a local folder unless you set one (README: S3-compatible remotes).
REMOTE ?= $(HOME)/.cache/genaug/dvc-remote
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1
export DVC_NO_ANALYTICS := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup pipeline test data remote flow clean

# A release-gate refusal (status 3: the synthetic data did not help) is the pipeline's verdict, printed
# by the version step, not a failure of the command; any other error stops make.
pipeline: setup
	dvc repro
	$(PY) -m components version || [ $$? -eq 3 ]

# Two test processes: much of the suite waits on servers and subprocesses, so 2 cores finish it sooner;
# worksteal: an idle process takes queued tests from the other (the long end-to-end tests sit together)
test: setup
	$(PY) -m pytest -q -n 2 --dist worksteal

setup: data $(VENV)/.installed remote

data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; \
	fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

remote: $(VENV)/.installed
	@if [ -z "$$(dvc config core.remote 2>/dev/null)" ]; then \
		mkdir -p "$(REMOTE)" && dvc remote add -d local "$(REMOTE)" && echo "DVC default remote: $(REMOTE)"; \
	fi

flow: setup
	$(PY) -m flows.augment

clean:
	rm -rf data metrics plots
