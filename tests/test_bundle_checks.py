"""MONAI-ecosystem checks of every bundle: metadata schema, workflow properties, config consistency, and the
component-name clash MONAI's short `_target_` lookup is prone to."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import pytest

from conftest import BRATS_BUNDLE, CAMVID_SAMPLES, CCP_SAMPLES, REPO, VOC_SAMPLES, needs

CONFIGS = BRATS_BUNDLE / "configs"
SCHEMA = REPO / "monai_app" / "schemas" / "meta_schema_20240725.json"
BUNDLES = ["brats_unet3d", "carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d"]
CONTRACT_KEYS = ["dataset_dir", "output_dir", "max_epochs", "val_interval", "batch_size", "learning_rate",
                 "num_workers", "device", "amp", "seed", "roi_size", "sw_batch_size", "overlap"]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_verifies_against_the_bundle_schema(bundle):
    from monai.bundle import verify_metadata

    assert SCHEMA.is_file(), f"the MONAI schema is expected at {SCHEMA}"
    meta = REPO / "bundles" / bundle / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(SCHEMA))  # raises on any violation


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_keeps_the_contract(bundle):
    """The override keys users and tests rely on (docs/ARCHITECTURE.md), the files, and inference matching training."""
    root = REPO / "bundles" / bundle
    assert {p.name for p in (root / "configs").iterdir()} >= {"train.json", "evaluate.json", "inference.json",
                                                              "metadata.json", "logging.conf"}
    assert (root / "LICENSE").is_file() and (root / "docs" / "README.md").is_file()
    train = json.loads((root / "configs" / "train.json").read_text())
    infer = json.loads((root / "configs" / "inference.json").read_text())
    assert [k for k in CONTRACT_KEYS if k not in train] == []
    assert [k for k in ("input", "output_dir", "ckpt_path", "device", "amp", "num_workers", "roi_size",
                        "sw_batch_size", "overlap") if k not in infer] == []
    assert infer["network_def"] == train["network_def"]
    for key in ("roi_size", "image_size", "features", "channels", "ignore_void", "num_classes", "palette", "pixdim",
                "n4", "sw_batch_size", "overlap", "mask_outside_brain", "min_component_size"):
        assert infer.get(key) == train.get(key), key


@pytest.mark.parametrize("bundle", ["carvana_unet2d", "camvid_unet2d", "voc_unet2d", "ccp_unet2d"])
def test_2d_inference_preprocesses_images_as_validation_does(bundle):
    root = REPO / "bundles" / bundle / "configs"
    train = json.loads((root / "train.json").read_text())
    infer = json.loads((root / "inference.json").read_text())
    image_steps = [_image_only(t) for t in train["load_transforms"] if "image" in str(t["keys"])]
    image_steps += [_image_only(t) for t in train["validate"]["transforms"]]
    assert infer["preprocessing"]["transforms"] == image_steps  # every argument, not only the transforms' names


def _image_only(step: dict) -> dict:
    """A training transform as inference has it: applied to the image alone (no label, so nothing may be missing)."""
    keys = step["keys"] if isinstance(step["keys"], list) else [step["keys"]]
    step = {k: v for k, v in step.items() if k != "allow_missing_keys"}
    return {**step, "keys": "image"} if "image" in keys else step


def _datasets(bundle: str, msd_tiny, tmp_path):
    """A dataset folder and an inference input for ``bundle`` (the real VOC and CamVid samples where present, else
    synthetic stand-ins)."""
    if bundle == "brats_unet3d":
        return msd_tiny, msd_tiny / "imagesTs"
    if bundle == "carvana_unet2d":
        from monai_app.synthetic.carvana import write_carvana

        write_carvana(tmp_path / "carvana", cars=3, views=2, test_cars=1, size=(32, 48))
        return tmp_path / "carvana", tmp_path / "carvana" / "test"
    if bundle == "voc_unet2d":
        if not VOC_SAMPLES.is_dir():
            from monai_app.synthetic.voc import write_voc

            write_voc(tmp_path / "voc", train=2, val=1, size=(32, 40))
            return tmp_path / "voc", tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages"
        return VOC_SAMPLES, VOC_SAMPLES / "VOC2012" / "JPEGImages"
    if bundle == "ccp_unet2d":
        from monai_app.synthetic.ccp import write_ccp

        write_ccp(tmp_path / "ccp", pixel_level=4, image_level=1, size=(48, 32))
        return tmp_path / "ccp", CCP_SAMPLES / "photos"
    if not CAMVID_SAMPLES.is_dir():
        from monai_app.synthetic.camvid import write_camvid

        write_camvid(tmp_path / "camvid", train=2, val=1, test=1, size=(32, 40))
        return tmp_path / "camvid", tmp_path / "camvid" / "images_prepped_test"
    return CAMVID_SAMPLES, CAMVID_SAMPLES / "images_prepped_test"


@pytest.mark.parametrize(
    "files, workflow_type",
    [(["train.json"], "train"), (["train.json", "evaluate.json"], "train"), (["inference.json"], "infer")],
    ids=["train", "evaluate", "inference"],
)
@pytest.mark.parametrize("bundle", BUNDLES)
def test_check_properties_is_empty(bundle, files, workflow_type, msd_tiny, tmp_path):
    from monai.bundle import ConfigWorkflow

    dataset, inputs = _datasets(bundle, msd_tiny, tmp_path)
    data = {"input": str(inputs)} if workflow_type == "infer" else {"dataset_dir": str(dataset)}
    configs = REPO / "bundles" / bundle / "configs"
    workflow = ConfigWorkflow(
        config_file=[str(configs / f) for f in files], meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"), workflow_type=workflow_type, output_dir=str(tmp_path / "run"),
        bundle_root=str(configs.parent), **data,
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def test_brats_inference_preprocesses_as_training_does():
    train = json.loads((CONFIGS / "train.json").read_text())
    infer = json.loads((CONFIGS / "inference.json").read_text())
    checks = {"monai_app.transforms.common.CheckImaged"}  # refuses a bad input, changes no voxel
    image_steps = [t["_target_"] for t in train["load_transforms"] if "image" in str(t["keys"])]
    assert [t["_target_"] for t in infer["preprocessing"]["transforms"] if t["_target_"] not in checks] == \
        [t for t in image_steps if t not in checks]


def _monai_app_names() -> set[str]:
    import monai_app

    names = set()
    for mod in pkgutil.walk_packages(monai_app.__path__, "monai_app."):
        module = importlib.import_module(mod.name)
        names |= {n for n, obj in vars(module).items() if not n.startswith("_") and
                  (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__}
    return names


def test_no_monai_app_component_shadows_a_monai_name():
    """MONAI resolves a short `_target_` over every loaded module whose name starts with 'monai' - monai_app
    included - so a monai_app class named like a MONAI one would silently replace it in configs."""
    from monai.bundle.config_item import ComponentLocator

    locator = ComponentLocator()
    clashes = {}
    for name in sorted(_monai_app_names()):
        modules = locator.get_component_module_name(name)
        modules = [modules] if isinstance(modules, str) else (modules or [])
        if any(m.startswith("monai_app") for m in modules) and any(m.startswith("monai.") for m in modules):
            clashes[name] = modules
    assert clashes == {}


def test_the_clash_check_would_catch_a_clash(monkeypatch):
    """The check above must be able to fail: plant a MONAI name in a monai_app module and see it found."""
    from monai.bundle.config_item import ComponentLocator

    import monai_app.transforms.brats

    monkeypatch.setattr(monai_app.transforms.brats, "Orientationd", type("Orientationd", (), {"__module__":
                                                                                        "monai_app.transforms.brats"}),
                        raising=False)
    modules = ComponentLocator().get_component_module_name("Orientationd")
    assert "monai_app.transforms.brats" in modules and any(m.startswith("monai.") for m in modules)


def _parsed(files: list[str], key: str, **overrides):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in files])
    parser.update(overrides)
    return parser.get_parsed_content(key)


def test_training_loss_punishes_false_positives_on_each_region():
    """MONAI's DiceCELoss applies softmax cross-entropy to multi-channel input even with sigmoid=True; on the
    overlapping WT/TC/ET channels that never punishes a false positive and a model learns to paint the whole brain.
    The bundle's loss must be per-channel sigmoid: predicting tumour everywhere costs far more than nothing."""
    import torch

    loss = _parsed([CONFIGS / "train.json"], "loss")
    target = torch.zeros(2, 3, 16, 16, 16)
    target[:, 0, 4:8, 4:8, 4:8] = 1  # a little whole tumour, no core, no enhancing
    right = torch.where(target > 0, 6.0, -6.0)
    everywhere = torch.full_like(target, 6.0)
    # DiceCELoss scores about 1.5x here (its softmax CE is blind to false positives); a sigmoid loss about 10x
    assert float(loss(everywhere, target)) > 5 * float(loss(right, target))


def test_seed_recipe_layer_swaps_loss_optimizer_and_batch(msd_tiny, tmp_path):
    files = [CONFIGS / "train.json", REPO / "configs" / "seed_brats_unet3d.json"]
    kw = {"dataset_dir": str(msd_tiny), "output_dir": str(tmp_path)}
    assert type(_parsed(files, "loss", **kw)).__name__ == "BCEWithLogitsLoss"
    assert type(_parsed(files, "optimizer", **kw)).__name__ == "Adadelta"
    assert _parsed(files, "train#dataloader#batch_size", **kw) == 4


@pytest.mark.parametrize("bundle", BUNDLES)
def test_network_input_and_output_match_the_metadata(bundle, tmp_path):
    """``python -m monai.bundle verify_net_in_out`` with the network metadata.json describes, and a metadata file
    that misstates the output channels is caught (so the check can fail)."""
    import shutil

    from monai.bundle import verify_net_in_out

    root = REPO / "bundles" / bundle
    kw = {"net_id": "network_def", "config_file": str(root / "configs" / "inference.json"),
          "bundle_root": str(root), "n": 2}
    verify_net_in_out(meta_file=str(root / "configs" / "metadata.json"), **kw)
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    meta["network_data_format"]["outputs"]["pred"]["num_channels"] += 1
    wrong = tmp_path / "metadata.json"
    wrong.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="channel"):
        verify_net_in_out(meta_file=str(wrong), **kw)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_copied_on_its_own_assumes_no_path_outside_it(bundle, msd_tiny, tmp_path):
    """A bundle folder copied elsewhere (as users copy model-zoo bundles) still resolves every config, with its own
    folder as bundle_root; no config mentions a path outside the bundle."""
    import shutil

    from monai.bundle import ConfigWorkflow

    copy = tmp_path / "elsewhere" / bundle
    shutil.copytree(REPO / "bundles" / bundle, copy, ignore=shutil.ignore_patterns("models", "runs"))
    for config in (copy / "configs").glob("*.json"):
        text = config.read_text()
        assert "../" not in text and str(REPO) not in text and "bundles/" not in text, config.name
    dataset, inputs = _datasets(bundle, msd_tiny, tmp_path)
    for files, kind, data in ((["train.json"], "train", {"dataset_dir": str(dataset)}),
                              (["inference.json"], "infer", {"input": str(inputs)})):
        workflow = ConfigWorkflow(
            config_file=[str(copy / "configs" / f) for f in files], meta_file=str(copy / "configs" / "metadata.json"),
            logging_file=str(copy / "configs" / "logging.conf"), workflow_type=kind,
            output_dir=str(tmp_path / "run"), bundle_root=str(copy), **data)
        workflow.initialize()
        assert workflow.check_properties() == []
        assert workflow.parser.get_parsed_content("bundle_root") == str(copy)


@needs(CAMVID_SAMPLES)
def test_a_copied_bundle_trains_and_infers_from_its_own_folder(tmp_path):
    """The whole round trip from a copy of the CamVid bundle outside the repository, run from inside the copy."""
    import shutil

    from conftest import bundle_run

    copy = tmp_path / "camvid_unet2d"
    shutil.copytree(REPO / "bundles" / "camvid_unet2d", copy)
    tiny = {"features": "[8,16,16,32,32,8]", "num_workers": 0, "batch_size": 4, "max_epochs": 1, "val_interval": 1}
    bundle_run("training", "configs/train.json", cwd=copy, dataset_dir=CAMVID_SAMPLES,
               output_dir=tmp_path / "run", **tiny)
    frame = CAMVID_SAMPLES / "images_prepped_test" / "0016E5_07959.png"
    bundle_run("inference", "configs/inference.json", cwd=copy, input=frame, output_dir=tmp_path / "pred",
               ckpt_path=tmp_path / "run" / "models" / "model.pt", features=tiny["features"])
    assert (tmp_path / "pred" / "0016E5_07959.png").is_file()
