"""MONAI-ecosystem checks of the brats_unet3d bundle: metadata schema, workflow properties, config consistency,
and the component-name clash MONAI's short `_target_` lookup is prone to."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil

import pytest

from conftest import BRATS_BUNDLE, REPO

CONFIGS = BRATS_BUNDLE / "configs"
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"


def test_metadata_verifies_against_the_bundle_schema():
    from monai.bundle import verify_metadata

    assert SCHEMA.is_file(), f"the shared MONAI schema is expected at {SCHEMA}"
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))  # raises on any violation


@pytest.mark.parametrize(
    "files, workflow_type",
    [(["train.json"], "train"), (["train.json", "evaluate.json"], "train"), (["inference.json"], "infer")],
    ids=["train", "evaluate", "inference"],
)
def test_check_properties_is_empty(files, workflow_type, msd_tiny, tmp_path):
    from monai.bundle import ConfigWorkflow

    data = {"input": str(msd_tiny / "imagesTs")} if workflow_type == "infer" else {"dataset_dir": str(msd_tiny)}
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in files], meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"), workflow_type=workflow_type, output_dir=str(tmp_path), **data,
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def test_inference_uses_the_trained_network_and_preprocessing():
    train = json.loads((CONFIGS / "train.json").read_text())
    infer = json.loads((CONFIGS / "inference.json").read_text())
    assert infer["network_def"] == train["network_def"]
    for key in ("channels", "roi_size", "pixdim", "n4", "sw_batch_size", "overlap", "mask_outside_brain",
                "min_component_size"):
        assert infer[key] == train[key], key
    image_steps = [t["_target_"] for t in train["load_transforms"] if "image" in str(t["keys"])]
    assert [t["_target_"] for t in infer["preprocessing"]["transforms"]] == image_steps


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

    import monai_app.transforms

    monkeypatch.setattr(monai_app.transforms, "Orientationd", type("Orientationd", (), {"__module__":
                                                                                        "monai_app.transforms"}),
                        raising=False)
    modules = ComponentLocator().get_component_module_name("Orientationd")
    assert "monai_app.transforms" in modules and any(m.startswith("monai.") for m in modules)


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
