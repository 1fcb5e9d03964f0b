"""The training datasets' caches (``monai_app.engine.data_loading``) through the real bundle configs: what is
cached where, that a cache never serves files made with other settings, and that a damaged cache file is recomputed."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.data import CacheDataset, Dataset

from monai_app.engine.data_loading import DiskCacheDataset, RaisingThreadDataLoader
from monai_app.errors import exception_chain
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
    dataset, workflow = _dataset(msd_tiny, tmp_path / "run", roi_size=[16, 16, 16])  # small: no padding after the crop
    assert isinstance(dataset, DiskCacheDataset)
    assert Path(dataset.cache_dir) == tmp_path / "run" / "cache"
    assert isinstance(workflow.parser.get_parsed_content("train#dataloader"), RaisingThreadDataLoader)
    first = dataset[0]  # one training sample: written to the cache on the way
    assert first[0]["image"].shape == (4, 16, 16, 16) and first[0]["label"].dtype == torch.float32
    files = sorted((tmp_path / "run" / "cache").glob("*.pt"))
    assert len(files) == 1
    cached = torch.load(files[0], weights_only=True)
    fresh = _deterministic(workflow, workflow.parser.get_parsed_content("datalists")["train"][0])
    assert cached["label"].dtype == torch.uint8  # the label is kept as bytes: 4x less disk than float32
    assert torch.equal(cached["image"], fresh["image"].as_tensor())
    assert torch.equal(cached["label"], fresh["label"].as_tensor())
    again = dataset._cachecheck(dataset.data[0])  # read back (memory-mapped)
    assert torch.equal(again["image"], cached["image"])
    again["image"].add_(1.0)  # a transform working in place must not change the file
    assert torch.equal(torch.load(files[0], weights_only=True)["image"], cached["image"])


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


def test_batch_of_cached_and_new_cases_collates(msd_tiny, tmp_path):
    """A resumed first epoch (or a shared cache_dir) mixes cases read from the cache with cases computed now."""
    from monai.data import DataLoader

    dataset, _ = _dataset(msd_tiny, tmp_path / "run")
    dataset._cachecheck(dataset.data[0])  # case 0 cached, case 1 not
    batch = next(iter(DataLoader(dataset, batch_size=2, shuffle=False)))
    assert batch["image"].shape == (2, 4, 32, 32, 32)
    assert len(list((tmp_path / "run" / "cache").glob("*.pt"))) == 2


class _Failing(Dataset):
    """Items 0, 1, 2, ...; reading item ``bad`` fails."""

    def __init__(self, n: int, bad: int) -> None:
        super().__init__(list(range(n)))
        self.bad = bad

    def __getitem__(self, index):
        if index == self.bad:
            raise ValueError(f"case {index}: damaged file")
        return torch.tensor([index])


def test_thread_loader_raises_loading_errors():
    """MONAI's ThreadDataLoader ends the epoch early when its thread fails; ours hands the error on, after the
    batches made before it."""
    seen = []
    loader = RaisingThreadDataLoader(_Failing(6, bad=3), batch_size=1, shuffle=False, num_workers=0)
    try:
        for batch in loader:
            seen.append(int(batch))
    except ValueError as exc:
        assert str(exc) == "case 3: damaged file"
    else:
        raise AssertionError("the loading error was lost")
    assert seen == [0, 1, 2]
    assert [int(b) for b in RaisingThreadDataLoader(_Failing(4, bad=9), batch_size=1, shuffle=False)] == [0, 1, 2, 3]


EXIT_WHILE_LOADING = """
import sys
import torch
from monai.data import Dataset
from monai_app.engine.data_loading import RaisingThreadDataLoader

def slow(index):
    x = torch.ones(1, 1, 64, 64, 64)
    for _ in range(10):  # most of a second in torch operations per item
        x = torch.nn.functional.avg_pool3d(x, 3, 1, 1)
    return x

batches = iter(RaisingThreadDataLoader(Dataset(list(range(10)), slow), batch_size=1, num_workers=0))
next(batches)  # the thread is now making the second batch
sys.exit(3)
"""


def test_exit_while_the_loader_thread_works_keeps_the_exit_code(tmp_path):
    """A program that exits while the loading thread is inside a torch operation exits with its own code; an
    unstopped thread aborts the process (exit code 134, "terminate called without an active exception")."""
    import os
    import subprocess
    import sys

    script = tmp_path / "exit_early.py"
    script.write_text(EXIT_WHILE_LOADING)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr


def test_training_stops_with_the_loading_error(msd_tiny, tmp_path):
    """A case that fails while training (after the dataset check) stops the run with its error, through the bundle's
    real loader and trainer, instead of ending epochs early."""
    import pytest

    workflow = make_workflow("brats_unet3d", "training", {"dataset_dir": str(msd_tiny), "output_dir": str(tmp_path),
                                                           **TINY, "max_epochs": 2, "validate_data": False})
    workflow.initialize()
    dataset = workflow.parser.get_parsed_content("train#dataset")
    broken = dict(dataset.data[1], image=str(tmp_path / "gone.nii.gz"))
    dataset.data = [dataset.data[0], broken]
    with pytest.raises(Exception) as info:
        workflow.run()
    workflow.finalize()
    chain = exception_chain(info.value)
    assert any(isinstance(e, FileNotFoundError) and "gone.nii.gz" in str(e) for e in chain), chain


def test_cache_holds_the_crop_not_the_whole_volume(msd_tiny, tmp_path):
    """A case with air around the brain is cropped before caching; the cache file holds the crop only (a crop is
    a view of the whole volume, and torch.save writes a view's whole storage)."""
    import nibabel as nib
    import numpy as np

    dataset, workflow = _dataset(msd_tiny, tmp_path / "run", roi_size=[16, 16, 16])
    item = dict(workflow.parser.get_parsed_content("datalists")["train"][0])
    for key in ("image", "label"):
        img = nib.load(item[key])
        data = np.asanyarray(img.dataobj)
        pad = [(12, 12)] * 3 + [(0, 0)] * (data.ndim - 3)
        item[key] = str(tmp_path / f"padded_{key}.nii.gz")
        nib.save(nib.Nifti1Image(np.pad(data, pad), img.affine, img.header), item[key])
    dataset.data = [item]
    dataset[0]
    (path,) = (tmp_path / "run" / "cache").glob("*.pt")
    cached = torch.load(path, weights_only=True)
    assert cached["image"].shape[1:] != nib.load(item["image"]).shape[:3]  # cropped to the brain...
    assert path.stat().st_size < cached["image"].nbytes + cached["label"].nbytes + 100_000  # ...the crop alone
