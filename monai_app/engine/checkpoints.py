"""Checkpoints a user can trust: read only as weights, clear errors for foreign or damaged files, and training that
survives being stopped.

- :func:`read_checkpoint` loads with ``torch.load(weights_only=True)`` (nothing in a checkpoint is executed) and turns
  every way a file can be wrong into one line naming it.
- :func:`network_weights` takes a network's weights from a bare state dict (``model.pt``) or from a training state
  (``last.pt``, under ``"model"``), so every command that takes a checkpoint accepts both.
- :class:`WeightsLoader` is MONAI's ``CheckpointLoader`` with those errors, and one line (:func:`check_fits`: how
  many tensors differ, the first example, what to pass) for a checkpoint of another bundle or network settings.
- :class:`ResumableTraining` keeps ``models/last.pt`` (network, optimizer, LR scheduler, trainer state, AMP scaler,
  best validation metric), written atomically after every epoch and when SIGTERM or SIGINT stops the run; resumes
  from it at the same epoch and iteration; and stops a run whose loss is NaN or infinite without overwriting the
  last good checkpoint.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import signal
from pathlib import Path
from typing import Any, Mapping

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from monai.handlers import CheckpointLoader

from monai_app.engine.distributed import initialized, rank
from monai_app.errors import TrainingStopped, UserInputError
from monai_app.files import OutputError, atomic_path
from monai_app.config import flag

logger = logging.getLogger(__name__)

LAST = "last.pt"
MODEL = "model"  # the key of the network's weights in last.pt (and in the bundles' load_dict)
BEST = "model.pt"  # the best-metric model: the bundles' best_saver writes it (key_metric_filename)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with a :class:`UserInputError` naming the file for a missing,
    truncated or corrupted file, or one holding Python objects besides weights (not loaded, for safety)."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise UserInputError(f"{path}: holds a Python object ({found[1]}) besides weights; it is not loaded, for "
                                 "safety (checkpoints of this project hold tensors and numbers only)") from exc
        detail = (re.findall(r"WeightsUnpickler error:\s*(.+)", text) or [text.strip().splitlines()[0]])[0]
        raise UserInputError(f"{path}: not a PyTorch checkpoint, or a damaged one ({detail.strip()})") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise UserInputError(f"{path}: not a PyTorch checkpoint, or a truncated or damaged one ({first})") from exc


def _unwrap(obj: Any) -> Any:
    return obj.module if isinstance(obj, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)) else obj


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def is_training_state(checkpoint: Any) -> bool:
    """Whether ``checkpoint`` is a training state (``last.pt``: the network's weights under ``"model"``, beside the
    optimizer's, the trainer's...) rather than a bare state dict (``model.pt``)."""
    return isinstance(checkpoint, Mapping) and _is_state_dict(checkpoint.get(MODEL))


def network_weights(path: str | os.PathLike, checkpoint: Any = None) -> dict[str, torch.Tensor]:
    """The network weights of a checkpoint (read from ``path`` when not given): a bare state dict, as the
    best-metric saver writes ``model.pt``, or the ``"model"`` entry of a training state (``last.pt``).

    Raises:
        UserInputError: the file holds something else (a state dict under another key, an optimizer alone...),
            naming the file, what it holds and which files to pass instead.
    """
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    weights = checkpoint[MODEL] if is_training_state(checkpoint) else checkpoint
    if not _is_state_dict(weights):
        held = f"keys {', '.join(map(str, list(checkpoint)[:6]))}" if isinstance(checkpoint, Mapping) and checkpoint \
            else f"a {type(checkpoint).__name__}"
        raise UserInputError(f"{path}: holds no network weights ({held}); pass a run's models/model.pt (the best "
                             "weights) or models/last.pt (the training state)")
    return dict(weights)


def weights_mismatch(net: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> str | None:
    """How ``weights`` differ from ``net``'s state dict, in one phrase (counts and the first example of each kind);
    None when they fit."""
    own = _unwrap(net).state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    reshaped = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    parts = []
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of {len(own)} tensors differ in shape (e.g. {k}: {list(weights[k].shape)} in "
                     f"the file, {list(own[k].shape)} in the network)")
    parts += [f"{len(keys)} {what} (e.g. {keys[0]})" for keys, what in ((missing, "missing"),
                                                                         (unexpected, "unexpected")) if keys]
    return ", ".join(parts) or None


def check_fits(path: str | os.PathLike, net: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
    """A :class:`UserInputError` naming ``path`` in one line when ``weights`` do not fit ``net``."""
    problem = weights_mismatch(net, weights)
    if problem:
        raise UserInputError(f"{path}: does not fit this bundle's network: it was trained with a different network "
                             "(another bundle, or other settings such as channels / features / out_channels): "
                             f"{problem}; pass the same network overrides as its training (the run's settings.json "
                             "lists them)")


def load_objects(path: str | os.PathLike, to_load: Mapping[str, Any], checkpoint: Mapping | None = None) -> None:
    """Load ``checkpoint`` (read from ``path`` when not given) into ``to_load`` with Ignite's
    ``Checkpoint.load_objects``. A single network takes a bare state dict (``model.pt``) or the ``"model"`` entry
    of a training state (``last.pt``); a network that does not fit is a one-line :class:`UserInputError` naming
    ``path``."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    if not isinstance(checkpoint, Mapping):
        raise UserInputError(f"{path}: not a checkpoint of network weights (found a {type(checkpoint).__name__})")
    key = next(iter(to_load))
    if len(to_load) == 1 and key not in checkpoint:  # a bare state_dict, as MONAI's best-metric saver writes it
        checkpoint = {key: network_weights(path, checkpoint)}
    missing = [k for k in to_load if k not in checkpoint]
    if missing:
        raise UserInputError(f"{path}: has no {', '.join(missing)} state (it holds {', '.join(map(str, checkpoint))})")
    for name, obj in to_load.items():
        if isinstance(_unwrap(obj), torch.nn.Module):
            check_fits(path, obj, network_weights(path, checkpoint[name]))
    try:
        Checkpoint.load_objects(to_load=dict(to_load), checkpoint=dict(checkpoint), strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = "; ".join(lines[1:3] if len(lines) > 1 else lines)[:300]
        raise UserInputError(f"{path}: does not fit this bundle's network: is it a checkpoint of another bundle, or "
                             f"of other network settings (channels / features / out_channels)? ({detail})") from exc


def best_saver_state(score: float, filename: str = BEST) -> Mapping:
    """The state of a best-metric checkpointer that has saved ``filename`` with priority ``score``, for
    ``CheckpointSaver.load_state_dict`` (Ignite's ``Checkpoint.load_state_dict``).

    Ignite has no public way to set what a ``Checkpoint`` has saved, but its ``state_dict`` is public: a throwaway
    ``Checkpoint`` "saves" ``filename`` (to nowhere) with that priority, and its ``state_dict()`` is the state, in
    whatever layout this Ignite version uses.

    Args:
        score: the best metric so far (the priority a ``CheckpointSaver`` gives a key-metric checkpoint).
        filename: the name of the saved file.

    Returns:
        ``Checkpoint.state_dict()``: the saved items, ``[(score, filename)]``.
    """
    pattern = filename.replace("{", "{{").replace("}", "}}")  # a fixed name: nothing in it is a placeholder
    probe = Checkpoint({"model": torch.nn.Identity()}, save_handler=lambda checkpoint, name, metadata=None: None,
                       score_function=lambda engine: score, filename_pattern=pattern)
    probe(Engine(lambda engine, batch: None))
    return probe.state_dict()


class WeightsLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (``weights_only=True``) with one-line errors naming the file: missing, damaged,
    not weights, or weights of another network."""

    def __call__(self, engine: Engine) -> None:
        load_objects(self.load_path, self.load_dict, read_checkpoint(self.load_path, self.map_location))
        self.logger.info(f"loaded {', '.join(self.load_dict)} from {self.load_path}")


def _any_rank(*flags: bool) -> list[bool]:
    """Each flag, true when it is true on any rank (one small all-reduce under DDP, so ranks stop together)."""
    if not initialized():
        return list(flags)
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(f) for f in flags], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


class ResumableTraining:
    """Keep a resumable ``last.pt``, resume from it, stop cleanly on a signal or a NaN loss.

    Args:
        ckpt_dir: the run's ``models/`` folder.
        save_dict: what a checkpoint holds, by name: network, optimizer, LR scheduler, trainer; the trainer's AMP
            scaler is added when it has one.
        resume: ``"auto"`` (resume when ``ckpt_dir/last.pt`` exists), ``True`` (it must exist) or ``False``
            (start again; ``last.pt`` is replaced after the first epoch).
        best_saver: MONAI's best-metric ``CheckpointSaver`` (``model.pt``); with ``evaluator``, its best score is
            kept in ``last.pt`` so a resumed run replaces ``model.pt`` only with a better model.
        evaluator: the validation engine whose ``best_metric`` is kept.
        loss_key: the trainer output holding the loss checked for NaN / Inf (None: no check).
        signals: the signals that stop training after the current iteration, saving first.
        best_filename: the name of the file ``best_saver`` writes (its ``key_metric_filename``).
    """

    def __init__(self, ckpt_dir: str | os.PathLike, save_dict: Mapping[str, Any], resume: bool | str = "auto",
                 best_saver=None, evaluator: Engine | None = None, loss_key: str | None = "loss",
                 signals: tuple = (signal.SIGTERM, signal.SIGINT), best_filename: str = BEST) -> None:
        try:  # "auto", or any spelling of a switch (true/false, 1/0, yes/no)
            self.resume = "auto" if str(resume).strip().lower() == "auto" else str(flag(resume, "resume")).lower()
        except UserInputError:
            raise UserInputError(f"--resume: expected auto, true or false, got {resume!r}") from None
        self.path = Path(ckpt_dir) / LAST
        self.save_dict = dict(save_dict)
        self.best_saver, self.evaluator, self.best_filename = best_saver, evaluator, best_filename
        self.loss_key, self.signals = loss_key, signals
        self._signal: int | None = None
        self._previous: dict = {}
        self.trainer: Engine | None = None

    # -------------------------------------------------------------------------------------------- wiring
    def attach(self, trainer: Engine) -> None:
        self.trainer = trainer
        if getattr(trainer, "scaler", None) is not None:
            self.save_dict.setdefault("scaler", trainer.scaler)
        self.save_dict.setdefault("trainer", trainer)
        trainer.add_event_handler(Events.STARTED, self._started)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        # the signal handlers live as long as the run, however it ends (an EXCEPTION_RAISED handler would not run:
        # MONAI's StatsHandler re-raises first)
        run = trainer.run

        @functools.wraps(run)
        def run_then_restore_signals(*args, **kwargs):
            try:
                return run(*args, **kwargs)
            finally:
                self._restore_signals()

        trainer.run = run_then_restore_signals

    def _started(self, engine: Engine) -> None:
        if self.resume == "true" and not self.path.is_file():
            raise UserInputError(f"{self.path}: no checkpoint to resume from (resume is true)")
        if self.resume != "false" and self.path.is_file():
            self.load(engine)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame) -> None:
        if self._signal is not None:  # asked twice: stop now, as the default handler would
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self._signal = signum
        logger.warning("%s received: saving a checkpoint after this iteration, then stopping (send it again to stop "
                       "at once, without saving)", signal.Signals(signum).name)

    def _restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    # -------------------------------------------------------------------------------------------- events
    def _loss(self, engine: Engine) -> float | None:
        output = engine.state.output
        if self.loss_key is None or output is None:
            return None
        first = output[0] if isinstance(output, (list, tuple)) and output else output
        value = first.get(self.loss_key) if isinstance(first, Mapping) else None
        return None if value is None else float(value)

    def _iteration_completed(self, engine: Engine) -> None:
        loss = self._loss(engine)
        bad_loss, stop = _any_rank(loss is not None and not math.isfinite(loss), self._signal is not None)
        state = engine.state
        where = f"epoch {state.epoch}, iteration {state.iteration}"
        if bad_loss:
            kept = f"the last good checkpoint {self.path} is kept" if self.path.is_file() else \
                "no epoch had completed, so no checkpoint was written"
            raise TrainingStopped(f"the loss became {loss if loss is not None else 'not finite on another rank'} at "
                                  f"{where}: training stopped and {kept}. Lower --learning_rate, try --amp false, "
                                  f"or check the data with `monai-app validate`")
        if stop:
            self.save(engine)
            name = signal.Signals(self._signal).name if self._signal else "a signal on another rank"
            raise TrainingStopped(f"stopped by {name} at {where}; saved {self.path}. Run the same command again to "
                                  "resume from there")

    def _epoch_completed(self, engine: Engine) -> None:
        self.save(engine)
        if _any_rank(self._signal is not None)[0]:  # a signal during validation: acted on once the epoch is saved
            name = signal.Signals(self._signal).name if self._signal else "a signal on another rank"
            raise TrainingStopped(f"stopped by {name} after epoch {engine.state.epoch}; saved {self.path}. Run the "
                                  "same command again to resume from there")

    # -------------------------------------------------------------------------------------------- save / load
    def state(self, engine: Engine) -> dict:
        """What ``last.pt`` holds: each object's ``state_dict`` (networks unwrapped from DDP) and the best metric."""
        record = {name: _unwrap(obj).state_dict() for name, obj in self.save_dict.items()}
        if self.evaluator is not None:
            record["best_metric"] = {"value": float(self.evaluator.state.best_metric),
                                     "epoch": int(self.evaluator.state.best_metric_epoch)}
        return record

    def save(self, engine: Engine) -> None:
        """Write ``last.pt`` atomically (rank 0 only): a crash while writing leaves the previous one whole."""
        if rank() != 0:
            return
        record = self.state(engine)
        try:
            with atomic_path(self.path) as tmp:
                torch.save(record, tmp)
        except (OSError, RuntimeError, OutputError) as exc:  # torch.save reports a full disk as a RuntimeError
            detail = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0].split(": ", 1)[-1]
            raise TrainingStopped(f"{self.path}: could not be written ({detail}); training stopped and the previous "
                                  "checkpoint is kept. Free some space (or fix the folder's permissions) and run the "
                                  "same command again to resume") from exc
        logger.debug("saved %s at epoch %d, iteration %d", self.path, engine.state.epoch, engine.state.iteration)

    def load(self, engine: Engine) -> None:
        """Restore every object from ``last.pt``; training goes on at the saved epoch and iteration, to the
        configured ``max_epochs``."""
        checkpoint = read_checkpoint(self.path)
        max_epochs, epoch_length = engine.state.max_epochs, engine.state.epoch_length
        saved = checkpoint.get("trainer", {}) if isinstance(checkpoint, Mapping) else {}
        to_load = {k: v for k, v in self.save_dict.items() if k != "trainer"}
        load_objects(self.path, to_load, checkpoint)
        iteration, saved_length = int(saved.get("iteration", 0)), int(saved.get("epoch_length") or epoch_length)
        epoch, within = divmod(iteration, saved_length)
        if saved_length != epoch_length:
            logger.warning("%s: the training set changed since it was saved (%d iterations an epoch, now %d): "
                           "epoch %d starts again from its beginning", self.path, saved_length, epoch_length,
                           epoch + 1)
            within = 0
        engine.load_state_dict({"iteration": epoch * epoch_length + within, "epoch_length": epoch_length,
                                "max_epochs": max(max_epochs, epoch)})
        engine.state.max_epochs = max_epochs
        best = checkpoint.get("best_metric")
        if best and self.evaluator is not None and best["epoch"] > 0:
            self.evaluator.state.best_metric, self.evaluator.state.best_metric_epoch = best["value"], best["epoch"]
            if self.best_saver is not None:  # model.pt is replaced only by a better model than the saved best
                self.best_saver.load_state_dict(best_saver_state(best["value"], self.best_filename))
        if epoch >= max_epochs:
            logger.warning("%s: this run already finished its %d epochs; pass a larger --max_epochs to train on, "
                           "or --resume false to start again", self.path, epoch)
        else:
            logger.info("resuming from %s: epoch %d, iteration %d of %d (best validation metric so far: %s)",
                        self.path, epoch + 1, within, epoch_length, f"{best['value']:.4f}" if best and best["epoch"]
                        else "none yet")
