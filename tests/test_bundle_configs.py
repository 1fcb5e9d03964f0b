"""The bundles' configs as files: formatted as the MONAI Model Zoo's pre-commit formats them, short lines, one helper
module, switches parsed once, a bundle root found from any folder, and 2-D bundles that differ only where declared."""

from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from conftest import REPO

BUNDLES = sorted(p.parent.parent.name for p in (REPO / "bundles").glob("*/configs/metadata.json"))
BUNDLES_2D = ["carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d"]
RUN_CONFIGS = ("train.json", "evaluate.json", "inference.json", "multi_gpu_train.json")
JSON_FILES = sorted((REPO / "bundles").glob("*/configs/*.json"))


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_json_is_formatted_as_the_model_zoo_formats_it(path):
    """`pretty-format-json --no-sort-keys --indent=4` and `end-of-file-fixer` (the zoo's pre-commit hooks) would
    change nothing: 4 spaces, keys in their order, ASCII escapes, one final newline."""
    text = path.read_text()
    expected = json.dumps(json.loads(text), indent=4, ensure_ascii=True, separators=(",", ": ")) + "\n"
    assert text == expected, f"{path}: run python scripts/format_bundle_json.py"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_config_lines_fit_in_120_columns(bundle):
    long = [f"{name}:{i}" for name in RUN_CONFIGS
            for i, line in enumerate((REPO / "bundles" / bundle / "configs" / name).read_text().splitlines(), 1)
            if len(line) > 120]
    assert not long, f"lines over 120 characters: {long}"


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("name", ["train.json", "inference.json"])
def test_configs_take_their_helpers_from_one_module_and_parse_each_switch_once(bundle, name):
    config = json.loads((REPO / "bundles" / bundle / "configs" / name).read_text())
    assert "$import monai_app.config as app" in config["imports"]
    text = (REPO / "bundles" / bundle / "configs" / name).read_text()
    assert "monai_app.config." not in text and "monai_app.workflow" not in text
    switches = config["switches"]
    assert switches and all(v == f"$app.flag(@{k}, '{k}')" for k, v in switches.items())
    outside = json.dumps({k: v for k, v in config.items() if k != "switches"})
    assert "flag(" not in outside, "a switch parsed outside `switches`"
    for key in switches:  # the raw switch is read only by `switches` (and recorded nowhere else)
        assert not re.search(rf"@{key}\b(?!#)", outside), f"@{key} used raw instead of @switches#{key}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_a_bundle_parses_from_any_folder(bundle, tmp_path, monkeypatch):
    """No command line to read (a notebook, MONAI Label, a test): bundle_root is still the bundle's folder, so keys
    built from it (ccp's grouping file) resolve wherever the process runs."""
    from monai.bundle import ConfigParser

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["python"])
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "train.json"))
    assert parser.get_parsed_content("bundle_root") == str(REPO / "bundles" / bundle)
    if bundle == "ccp_unet2d":
        assert parser.get_parsed_content("num_classes") == 14  # read from configs/ccp_59_to_14.json


@pytest.mark.parametrize("argv", [
    ["--config_file", "{f}"], ["--config_file={f}"], ["--config-file", "{f}"], ["--config-file={f}"],
    ["--config_file", "['{f}','{layer}']"], ["--config-file=\"['{f}', '{layer}']\""]])
def test_bundle_root_is_the_folder_of_the_config_file_named_on_the_command_line(argv, tmp_path, monkeypatch):
    """Every spelling Fire accepts; a copy of a bundle outside the repository is its own root."""
    from monai_app.config import bundle_root

    copy = tmp_path / "copy_of_camvid"
    shutil.copytree(REPO / "bundles" / "camvid_unet2d", copy)
    f, layer = copy / "configs" / "train.json", copy / "configs" / "multi_gpu_train.json"
    monkeypatch.chdir(tmp_path)
    words = [w.format(f=f, layer=layer) for w in argv]
    monkeypatch.setattr(sys, "argv", ["monai.bundle", "run", "training", *words, "--max_epochs", "1"])
    assert bundle_root("camvid_unet2d") == str(copy)


# Top-level keys (and train#/validate# parts) that a 2-D bundle may set its own way: its data, classes, network
# size and loss. Everything else is the same recipe in the four, so a fix in one is a fix in all.
DATASET_KEYS = {
    "*": {"bundle_root", "dataset_dir", "output_dir", "imports", "datalists", "dataset_check", "settings",
          "switches", "max_epochs", "features", "roi_size", "loss", "load_transforms", "train#augmentation",
          "num_classes", "class_names", "image_size"},
    "carvana_unet2d": {"mask_source", "val_fraction", "test_fraction", "cache_dir", "weight_decay", "optimizer",
                       "network_def", "train#dataset", "validate#transforms", "validate#postprocessing",
                       "validate#key_metric", "validate#additional_metrics", "validate#handlers",
                       "validate#evaluator"},
    "camvid_unet2d": {"layout", "ignore_void"},
    "voc_unet2d": {"val_fraction", "lambda", "tversky_alpha", "tversky_beta", "validate#transforms"},
    "ccp_unet2d": {"grouping_file", "grouping", "class_weighting", "pixel_counts", "class_weights"},
}


def _parts(config: dict) -> dict:
    parts = {k: v for k, v in config.items() if k not in ("train", "validate")}
    parts.update({f"{p}#{k}": v for p in ("train", "validate") for k, v in config[p].items()})
    return parts


def test_the_four_2d_trainings_agree_outside_their_declared_dataset_keys():
    parts = {b: _parts(json.loads((REPO / "bundles" / b / "configs" / "train.json").read_text())) for b in BUNDLES_2D}
    keys = set().union(*parts.values())
    for key in sorted(keys):
        free = {b for b in BUNDLES_2D if key in DATASET_KEYS["*"] | DATASET_KEYS[b]}
        shared = {b: json.dumps(parts[b].get(key, "<absent>"), sort_keys=True) for b in BUNDLES_2D if b not in free}
        assert len(set(shared.values())) <= 1, f"{key} differs between {sorted(shared)} but is declared nowhere"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_amp_autocasts_the_inference_evaluator_on_cuda_only(bundle):
    """`--amp true` on the CPU: MONAI's evaluator would only warn that CUDA autocast is off; the configs say no."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / bundle / "configs" / "inference.json"))
    parser.update({"amp": "true", "device": "cpu"})
    assert parser.get_parsed_content("switches#amp") is True
    assert parser.get_parsed_content("evaluator#amp") is False


@pytest.mark.parametrize("bundle", BUNDLES)
def test_evaluation_checks_the_checkpoint_before_writing_anything(bundle, tmp_path):
    from monai.bundle import ConfigWorkflow

    from monai_app.errors import user_error

    configs = REPO / "bundles" / bundle / "configs"
    workflow = ConfigWorkflow(config_file=[str(configs / "train.json"), str(configs / "evaluate.json")],
                              meta_file=str(configs / "metadata.json"), logging_file=False, run_id="evaluating",
                              output_dir=str(tmp_path / "run"), dataset_dir=str(tmp_path / "no_data"))
    workflow.initialize()
    with pytest.raises(Exception) as raised:  # MONAI wraps the error of a config expression in a RuntimeError
        workflow.run()
    assert str(user_error(raised.value)).endswith("model.pt: checkpoint (pass --ckpt_path) does not exist")
    assert not (tmp_path / "run").exists()
