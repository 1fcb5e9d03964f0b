# `make demo` and `make test` do all set-up from a fresh clone: a virtual environment, torch==2.13.0 first (the
# CPU build on this machine; a looser torch requirement resolved first would pull a multi-GB CUDA build), then
# this package with its pinned dependencies.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO ?= demo

.PHONY: install test demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# Synthesise a small BraTS dataset (MSD layout), train on CPU for a few minutes, evaluate on the held-out
# cases, segment the unlabelled ones, and print where everything is.
demo: $(STAMP)
	$(VENV)/bin/monai-app synth brats --out $(DEMO)/Task01_BrainTumour --cases 24 --test-cases 2
	$(VENV)/bin/monai-app train brats_unet3d --dataset-dir $(DEMO)/Task01_BrainTumour --output-dir $(DEMO)/run \
		--max-epochs 36 --val_interval 6 --cache_rate 1.0 --num_workers 2
	$(VENV)/bin/monai-app evaluate brats_unet3d --dataset-dir $(DEMO)/Task01_BrainTumour --output-dir $(DEMO)/run \
		--num_workers 2
	$(VENV)/bin/monai-app infer brats_unet3d --input $(DEMO)/Task01_BrainTumour/imagesTs --output-dir $(DEMO)/predictions \
		--ckpt $(DEMO)/run/models/model.pt
	@echo
	@echo "Held-out Dice / HD95 (mm):"; column -s, -t < $(DEMO)/run/eval/per_case.csv
	@echo
	@echo "TensorBoard:        $(VENV)/bin/tensorboard --logdir $(DEMO)/run/tb"
	@echo "Label maps (NIfTI): $(DEMO)/predictions/"

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
