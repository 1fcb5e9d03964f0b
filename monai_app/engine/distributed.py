"""The small glue each bundle's ``configs/multi_gpu_train.json`` needs to train with ``torchrun`` (DDP).

- :func:`init_process_group` / :func:`destroy_process_group`: the process group from torchrun's environment (NCCL on
  CUDA, else Gloo), with a clear error when the layer is run without torchrun.
- :func:`device`: ``cuda:LOCAL_RANK`` on CUDA, else the CPU.
- :func:`summary_writer`: TensorBoard's ``SummaryWriter`` on rank 0, a :class:`NullWriter` (no file) elsewhere.
- :func:`validation_sampler`: MONAI's ``DistributedSampler`` that puts each validation case on exactly one rank.
- :func:`rank_zero_only`: a handler list with the writers (stats, TensorBoard, pictures, checkpoints, progress bars)
  kept on rank 0 only; handlers that take part in collective steps (validation, LR schedule, metrics) run everywhere.
- :func:`all_gather_list`: every rank's list items, in rank order, as MONAI's metric buffers are gathered.

Everything here is a no-op (rank 0 of a world of 1) when no process group is initialised.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from monai_app.errors import UserInputError

logger = logging.getLogger(__name__)

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def initialized() -> bool:
    """Whether a ``torch.distributed`` process group is running."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if initialized() else 1


def local_rank() -> int:
    """This process's rank on its machine, as torchrun sets ``LOCAL_RANK`` (0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def init_process_group(backend: str | None = None) -> None:
    """Join the process group torchrun describes in the environment: NCCL when CUDA is available, else Gloo.

    On CUDA, this process's GPU becomes ``cuda:LOCAL_RANK``. Nothing happens when a group is already running.

    Raises:
        UserInputError: the process was not started by ``torchrun`` (its environment variables are missing).
    """
    if initialized():
        return
    missing = [k for k in TORCHRUN_ENV if k not in os.environ]
    if missing:
        raise UserInputError(f"configs/multi_gpu_train.json runs under torchrun (no {', '.join(missing)} in the "
                             "environment): start it with `torchrun --nproc_per_node=N -m monai.bundle run ...`, or "
                             "leave the layer out to train in one process")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(device())
    dist.init_process_group(backend=backend)
    atexit.register(_free_before_shutdown)
    logger.info("rank %d of %d (local rank %d, %s backend, device %s)", rank(), world_size(), local_rank(), backend,
                device())
    if rank() != 0:  # rank 0 logs for all; the others still show warnings and errors
        logging.getLogger().setLevel(logging.WARNING)


def _free_before_shutdown() -> None:
    """Free the objects held only in reference cycles (the network and the engines of a finished workflow) while the
    interpreter is whole.

    torch 2.13 aborts a process that still holds a ``DistributedDataParallel`` network when the interpreter shuts
    down ("terminate called without an active exception", exit code -6, after the run has finished): measured in 11
    of 40 two-process Gloo runs whose network was only reachable through a reference cycle, as a bundle's is (its
    engines and handlers refer to each other), and in none of 40 with this collection at exit.
    """
    gc.collect()


def destroy_process_group() -> None:
    """Leave the process group, if one is running."""
    if initialized():
        dist.destroy_process_group()


class NullWriter:
    """Stands in for a ``SummaryWriter`` on ranks > 0: every method (``add_scalar``, ``add_image``, ``flush``,
    ``close`` ...) does nothing, and no events file is created."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


def summary_writer(**kwargs: Any):
    """``torch.utils.tensorboard.SummaryWriter(**kwargs)`` on rank 0, a :class:`NullWriter` on other ranks."""
    if rank() != 0:
        return NullWriter()
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(**kwargs)


def validation_sampler(dataset):
    """MONAI's ``DistributedSampler`` for validation: each case on exactly one rank, in order, none repeated
    (``even_divisible=False``, so ranks may get one case less), so metrics gathered over the ranks are exact.

    Raises:
        UserInputError: fewer validation cases than processes (each process needs at least one).
    """
    from monai.data import DistributedSampler

    if len(dataset) < world_size():
        raise UserInputError(f"the validation split has {len(dataset)} case(s), fewer than the {world_size()} "
                             "training processes: each needs at least one. Start fewer processes, or give the "
                             "validation split more cases (e.g. a larger --val_fraction)")
    return DistributedSampler(dataset, even_divisible=False, num_replicas=world_size(), rank=rank(), shuffle=False)


def _every_rank_types() -> tuple[type, ...]:
    """Handler types that must run on every rank: they take part in collective steps (validation runs the network
    and gathers metrics; metric handlers all-gather) or keep ranks in step (LR schedule, early stop). Handlers of
    this project say so with a class attribute ``every_rank = True`` (MetricColumns, ClassMetrics)."""
    from ignite.metrics import Metric
    from monai.handlers import CheckpointLoader, EarlyStopHandler, LrScheduleHandler, ValidationHandler

    return Metric, CheckpointLoader, EarlyStopHandler, LrScheduleHandler, ValidationHandler


def rank_zero_only(handlers: Sequence[Any] | None) -> list[Any]:
    """``handlers`` on rank 0; on other ranks only those that must run everywhere (see :func:`_every_rank_types`).

    What is left out on ranks > 0 writes things (logs of metrics, TensorBoard, pictures, checkpoints, progress
    bars), which rank 0 does once for all.
    """
    handlers = list(handlers or [])
    if rank() == 0:
        return handlers
    keep = _every_rank_types()
    return [h for h in handlers if isinstance(h, keep) or getattr(h, "every_rank", False)]


def all_gather_list(items: Sequence[Any]) -> list[Any]:
    """Every rank's ``items`` concatenated in rank order (each rank's own order kept), like MONAI's gathered
    metric buffers; ``items`` itself without a process group. Items must be picklable."""
    if not initialized() or world_size() == 1:
        return list(items)
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]
