"""The training data pipeline: where the deterministic transforms' results are kept (RAM, disk, or nowhere), and a
``ThreadDataLoader`` that does not lose errors.

``training_dataset`` is ``train#dataset`` in the train.json of brats_unet3d and carvana_unet2d:

- ``cache_rate`` > 0: MONAI's ``CacheDataset`` keeps that share of the cases, transformed up to the first random
  transform, in RAM (fastest; a BraTS-size case takes ~100-150 MB).
- else ``cache_dir`` set: ``DiskCacheDataset`` (MONAI's ``PersistentDataset``) writes each case's deterministic
  result to ``cache_dir`` during the first epoch and reads it back afterwards. The file names hash the case's
  entry *and* the settings of the cached transforms, so runs with other settings (``pixdim``, ``n4``,
  ``image_size``...) never read each other's files and one folder can be shared between runs.
- else a plain ``Dataset`` (every transform on every step).

``RaisingThreadDataLoader`` (``train#dataloader`` of the same bundles) is MONAI's ``ThreadDataLoader``, except that
an exception raised while loading (a damaged file, a full disk) reaches the training loop, and that its thread is
stopped before Python exits. MONAI's ``ThreadBuffer`` lets its thread die with the exception printed and ends the
iteration as if the data were exhausted: the epoch silently ends early, and an Ignite engine with a fixed
``epoch_length`` restarts the loader again and again.

BENCHMARKS.md §2 has what each costs per step.
"""

from __future__ import annotations

import atexit
import warnings
import weakref
from collections.abc import Callable, Sequence
from copy import deepcopy
from pathlib import Path

import torch
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.data import ThreadDataLoader as _MonaiThreadDataLoader
from monai.data.thread_buffer import ThreadBuffer
from monai.data.utils import pickle_hashing
from monai.utils import convert_to_tensor


class DiskCacheDataset(PersistentDataset):
    """``PersistentDataset`` whose file names include the cached transforms' settings, and whose files are memory-
    mapped rather than read: a random crop then touches only the pages of its patch (a cached BraTS case is ~100 MB;
    reading it whole took 0.1 s of each step's CPU per case). A cache file it cannot read (a copy cut short by a kill
    or a full disk) is made again; when the cache cannot be written (a full disk) training goes on without caching,
    with one warning, instead of stopping."""

    def __init__(self, data: Sequence, transform: Callable, cache_dir: str | Path) -> None:
        super().__init__(data, transform, cache_dir=cache_dir, hash_transform=pickle_hashing)
        self._warned = False

    def _cachecheck(self, item_transformed):
        # what a cache hit returns (tensors without metadata) also for a case computed now: a batch mixing both
        # (a resumed first epoch, a shared cache_dir) must collate; CropForegroundd's coordinates are numpy arrays
        return convert_to_tensor(self._cached_or_computed(item_transformed), convert_numeric=False,
                                 track_meta=self.track_meta)

    def _cached_or_computed(self, item_transformed):
        path = Path(self.cache_dir) / f"{self.hash_func(item_transformed).decode('utf-8')}{self.transform_hash}.pt"
        if path.is_file():
            try:  # copy-on-write mapping: transforms writing in place never change the file
                return torch.load(path, weights_only=True, mmap=True)
            except Exception:  # an unreadable cache file: made again below
                path.unlink(missing_ok=True)
        try:
            return super()._cachecheck(item_transformed)  # computes the case and writes its cache file
        except Exception as exc:
            # either a transform failed (it fails again below, with its own error) or the file could not be written
            item = self._pre_transform(deepcopy(item_transformed))
            if not self._warned:
                warnings.warn(f"{self.cache_dir}: could not write to the training cache ({exc}); training goes on "
                              "without caching the cases not cached yet", stacklevel=2)
                self._warned = True
            return item


def training_dataset(data: Sequence, transform: Callable, cache_rate: float = 0.0, cache_dir: str | None = None,
                     num_workers: int | None = 0, progress: bool = True) -> Dataset:
    """The dataset for ``data``: cached in RAM (``cache_rate`` > 0), on disk (``cache_dir``), or not cached."""
    if cache_rate > 0:
        return CacheDataset(data, transform, cache_rate=cache_rate, num_workers=num_workers, progress=progress)
    if cache_dir:
        return DiskCacheDataset(data, transform, cache_dir)
    return Dataset(data, transform)


class _RaisingThreadBuffer(ThreadBuffer):
    """``ThreadBuffer`` that raises its thread's exception in the consuming thread, after the batches before it, and
    whose thread is stopped before the interpreter shuts down.

    A loading thread still inside a torch operation when Python exits aborts the process ("terminate called without
    an active exception", exit code 134 instead of the program's own), e.g. a script that leaves a loop over the
    loader early and exits while the next batch is being made.
    """

    error: BaseException | None = None
    running: weakref.WeakSet = weakref.WeakSet()

    def enqueue_values(self):
        try:
            super().enqueue_values()
        except BaseException as exc:  # handed to the consumer below
            self.error = exc

    def __iter__(self):
        self.error = None
        _RaisingThreadBuffer.running.add(self)
        yield from super().__iter__()
        if self.error is not None:
            raise self.error


@atexit.register
def _stop_loading_threads() -> None:
    for buffer in list(_RaisingThreadBuffer.running):
        buffer.stop()  # the thread finishes the item it is making, then ends


class RaisingThreadDataLoader(_MonaiThreadDataLoader):
    """MONAI's ``ThreadDataLoader`` (batches made in a background thread) that raises the loading errors."""

    def __iter__(self):
        for batch in _RaisingThreadBuffer(DataLoader.__iter__(self), self.buffer_size, self.buffer_timeout):
            for _ in range(self.repeats):
                yield batch
