# `make demo` and `make test` do all set-up from a fresh clone: a virtual environment, torch==2.13.0 first (the
# CPU build on this machine; a looser torch requirement resolved first would pull a multi-GB CUDA build), then
# this package with its pinned dependencies.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO ?= demo

.PHONY: install test bench demo demo-carvana demo-camvid demo-voc demo-ccp clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,tracking]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# CPU benchmarks (BENCHMARKS.md): inference on a BraTS-size case against plain MONAI, training throughput with each
# data pipeline, scaling with size and number of cases. Synthetic data is written once under $(BENCH_DIR) and
# reused. `make bench BENCH_CKPT=runs/brats/models/model.pt` scores inference with trained weights too.
BENCH_DIR ?= .bench
BENCH_CKPT ?=
bench: $(STAMP)
	$(PY) scripts/bench_inference.py --workdir $(BENCH_DIR) $(if $(BENCH_CKPT),--ckpt $(BENCH_CKPT))
	$(PY) scripts/bench_training.py --workdir $(BENCH_DIR)
	$(PY) scripts/bench_scaling.py --workdir $(BENCH_DIR)

# Synthesise a small BraTS dataset (MSD layout), train on CPU for a few minutes, evaluate on the held-out
# cases, segment the unlabelled ones, and print where everything is.
demo: $(STAMP)
	$(VENV)/bin/monai-app synth brats --out $(DEMO)/Task01_BrainTumour --cases 24 --test-cases 2
	$(VENV)/bin/monai-app train brats_unet3d --dataset-dir $(DEMO)/Task01_BrainTumour --output-dir $(DEMO)/run \
		--max-epochs 100 --val_interval 5 --cache_rate 1.0
	$(VENV)/bin/monai-app evaluate brats_unet3d --dataset-dir $(DEMO)/Task01_BrainTumour --output-dir $(DEMO)/run
	$(VENV)/bin/monai-app infer brats_unet3d --input $(DEMO)/Task01_BrainTumour/imagesTs --output-dir $(DEMO)/predictions \
		--ckpt $(DEMO)/run/models/model.pt
	@echo
	@echo "Held-out Dice / HD95 (mm):"; column -s, -t < $(DEMO)/run/eval/per_case.csv
	@echo
	@echo "TensorBoard:        $(VENV)/bin/tensorboard --logdir $(DEMO)/run/tb"
	@echo "Label maps (NIfTI): $(DEMO)/predictions/"

# The 2-D bundles on synthetic data at a quarter (Carvana) or half (CamVid) of the real image size, with a small
# network (features 16..256) so a CPU run takes minutes: train, score the held-out images, segment the test photos.
SMALL_UNET := --features "[16,32,64,128,256,16]"

demo-carvana: $(STAMP)
	$(VENV)/bin/monai-app synth carvana --out $(DEMO)/carvana --cases 10 --size 320 480
	$(VENV)/bin/monai-app train carvana_unet2d --dataset-dir $(DEMO)/carvana --output-dir $(DEMO)/carvana_run \
		--max-epochs 10 --val_interval 2 --image_size 128 $(SMALL_UNET) --cache_rate 1.0
	$(VENV)/bin/monai-app evaluate carvana_unet2d --dataset-dir $(DEMO)/carvana --output-dir $(DEMO)/carvana_run \
		--image_size 128 $(SMALL_UNET)
	$(VENV)/bin/monai-app infer carvana_unet2d --input $(DEMO)/carvana/test --output-dir $(DEMO)/carvana_predictions \
		--ckpt $(DEMO)/carvana_run/models/model.pt --image_size 128 $(SMALL_UNET)
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO)/carvana_run/tb"
	@echo "Masks and submission.csv: $(DEMO)/carvana_predictions/"

demo-camvid: $(STAMP)
	$(VENV)/bin/monai-app synth camvid --out $(DEMO)/CamVid --cases 96 --size 180 240
	$(VENV)/bin/monai-app train camvid_unet2d --dataset-dir $(DEMO)/CamVid --output-dir $(DEMO)/camvid_run \
		--max-epochs 60 --val_interval 5 $(SMALL_UNET) --cache_rate 1.0 --num_workers 2
	$(VENV)/bin/monai-app evaluate camvid_unet2d --dataset-dir $(DEMO)/CamVid --output-dir $(DEMO)/camvid_run \
		$(SMALL_UNET) --num_workers 2
	$(VENV)/bin/monai-app infer camvid_unet2d --input $(DEMO)/CamVid/images_prepped_test \
		--output-dir $(DEMO)/camvid_predictions --ckpt $(DEMO)/camvid_run/models/model.pt $(SMALL_UNET)
	@echo; column -s, -t < $(DEMO)/camvid_run/eval/class_scores.csv
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO)/camvid_run/tb"
	@echo "Label and colour PNGs: $(DEMO)/camvid_predictions/"

demo-voc: $(STAMP)
	$(VENV)/bin/monai-app synth voc --out $(DEMO)/voc --cases 96 --size 188 250
	$(VENV)/bin/monai-app train voc_unet2d --dataset-dir $(DEMO)/voc --output-dir $(DEMO)/voc_run \
		--max-epochs 60 --val_interval 5 --image_size 128 $(SMALL_UNET) --cache_rate 1.0 --num_workers 2
	$(VENV)/bin/monai-app evaluate voc_unet2d --dataset-dir $(DEMO)/voc --output-dir $(DEMO)/voc_run \
		--image_size 128 $(SMALL_UNET) --num_workers 2
	$(VENV)/bin/monai-app infer voc_unet2d --input $(DEMO)/voc/VOCdevkit/VOC2012/JPEGImages \
		--output-dir $(DEMO)/voc_predictions --ckpt $(DEMO)/voc_run/models/model.pt --image_size 128 $(SMALL_UNET)
	@echo; column -s, -t < $(DEMO)/voc_run/eval/class_scores.csv

demo-ccp: $(STAMP)
	$(VENV)/bin/monai-app synth ccp --out $(DEMO)/ccp --cases 96 --test-cases 8 --size 416 275
	$(VENV)/bin/monai-app train ccp_unet2d --dataset-dir $(DEMO)/ccp --output-dir $(DEMO)/ccp_run \
		--max-epochs 60 --val_interval 5 --roi_size "[160,112]" $(SMALL_UNET) --cache_rate 1.0 --num_workers 2
	$(VENV)/bin/monai-app evaluate ccp_unet2d --dataset-dir $(DEMO)/ccp --output-dir $(DEMO)/ccp_run \
		--roi_size "[160,112]" $(SMALL_UNET) --num_workers 2
	$(VENV)/bin/monai-app infer ccp_unet2d --input $(DEMO)/ccp/photos --output-dir $(DEMO)/ccp_predictions \
		--ckpt $(DEMO)/ccp_run/models/model.pt --roi_size "[160,112]" $(SMALL_UNET)
	@echo; column -s, -t < $(DEMO)/ccp_run/eval/class_scores.csv

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache $(BENCH_DIR)
