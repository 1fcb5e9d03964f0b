"""The training datasets' caches (``monai_app.caching``) through the real bundle configs: what is cached where,
that a cache never serves files made with other settings, and that a damaged cache file is recomputed."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.data import CacheDataset, Dataset

from monai_app.caching import DiskCacheDataset
from monai_app.workflow import make_workflow

TINY = {"channels": [8, 16, 32, 64], "roi_size": [32, 32, 32], "batch_size": 1, "num_samples": 1}


def _dataset(dataset_dir: Path, out: Path, **overrides):
    workflow = make_workflow("brats_unet3d", "training", {"dataset_dir": str(dataset_dir), "output_dir": str(out),
                                                           **TINY, **overrides})
    workflow.initialize()
    return workflow.parser.get_parsed_content("train#dataset"), workflow


def _deterministic(workflow, item: dict) -> dict:
    """What the bundle's transforms make of ``item`` up to its first random transform, computed without a cache."""
    dataset = Dataset([item], workflow.parser.get_parsed_content("train#preprocessing"))
    first_random = dataset.transform.get_index_of_first(lambda t: hasattr(t, "R"))
    return dataset.transform(dict(item), end=first_random)


def test_default_is_a_disk_cache_under_the_output_dir(msd_tiny, tmp_path):
    dataset, workflow = _dataset(msd_tiny, tmp_path / "run")
    assert isinstance(dataset, DiskCacheDataset)
    assert Path(dataset.cache_dir) == tmp_path / "run" / "cache"
    assert type(workflow.parser.get_parsed_content("train#dataloader")).__name__ == "ThreadDataLoader"
    first = dataset[0]  # one training sample: written to the cache on the way
    assert first[0]["image"].shape == (4, 32, 32, 32) and first[0]["label"].dtype == torch.float32
    files = sorted((tmp_path / "run" / "cache").glob("*.pt"))
    assert len(files) == 1
    cached = torch.load(files[0], weights_only=True)
    fresh = _deterministic(workflow, workflow.parser.get_parsed_content("datalists")["train"][0])
    assert cached["label"].dtype == torch.uint8  # the label is kept as bytes: 4x less disk than float32
    assert torch.equal(cached["image"], fresh["image"].as_tensor())
    assert torch.equal(cached["label"], fresh["label"].as_tensor())


def test_ram_cache_or_none(msd_tiny, tmp_path):
    assert isinstance(_dataset(msd_tiny, tmp_path / "a", cache_rate=1.0)[0], CacheDataset)
    dataset = _dataset(msd_tiny, tmp_path / "b", cache_dir="")[0]
    assert type(dataset) is Dataset
    dataset[0]
    assert not (tmp_path / "b" / "cache").exists()


def test_shared_cache_keeps_settings_apart(msd_tiny, tmp_path):
    """Two runs sharing one cache_dir reuse each other's files only when the cached transforms are the same."""
    shared = tmp_path / "shared_cache"
    one, _ = _dataset(msd_tiny, tmp_path / "one", cache_dir=str(shared))
    one[0]
    names = {f.name for f in shared.glob("*.pt")}
    stamps = {f.name: f.stat().st_mtime_ns for f in shared.glob("*.pt")}
    same, _ = _dataset(msd_tiny, tmp_path / "two", cache_dir=str(shared), max_epochs=7, seed=3)
    same.data = one.data  # the same case (the split depends on the seed)
    same[0]
    assert {f.name: f.stat().st_mtime_ns for f in shared.glob("*.pt")} == stamps  # read back, not rewritten
    other, _ = _dataset(msd_tiny, tmp_path / "three", cache_dir=str(shared), pixdim=[2.0, 2.0, 2.0])
    other.data = one.data
    sample = other[0][0]
    new = {f.name for f in shared.glob("*.pt")} - names
    assert len(new) == 1  # another file for the other spacing; the 1 mm file was not used
    cached = torch.load(shared / new.pop(), weights_only=True)
    assert cached["image"].shape[1:] != torch.load(shared / names.pop(), weights_only=True)["image"].shape[1:]
    assert sample["image"].shape == (4, 32, 32, 32)


def test_damaged_cache_file_is_recomputed(msd_tiny, tmp_path):
    dataset, workflow = _dataset(msd_tiny, tmp_path / "run")
    dataset[0]
    (path,) = (tmp_path / "run" / "cache").glob("*.pt")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 3])  # a copy cut short
    again, _ = _dataset(msd_tiny, tmp_path / "run")
    sample = again[0][0]
    assert sample["image"].shape == (4, 32, 32, 32)
    assert path.read_bytes() == whole  # rewritten whole


def test_full_disk_while_caching_does_not_stop_training(msd_tiny, tmp_path, monkeypatch):
    import errno
    import warnings

    dataset, _ = _dataset(msd_tiny, tmp_path / "run")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = [dataset[0][0], dataset[1][0]]
    assert all(s["image"].shape == (4, 32, 32, 32) for s in samples)
    messages = [str(w.message) for w in caught if "training cache" in str(w.message)]
    assert len(messages) == 1 and "No space left on device" in messages[0]
    assert not list((tmp_path / "run" / "cache").glob("*.pt"))
