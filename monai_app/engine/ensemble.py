"""Ensembles over checkpoints, as nnU-Net ensembles its cross-validation folds.

- :func:`checkpoint_paths` resolves what ``ckpt_path`` names into a list of checkpoint files: a file, a list of
  files, a run folder (``R/models/model.pt``) or a folds root (``R/fold_*/models/model.pt``, as
  ``monai-app train --folds`` writes it).
- :func:`load_network` gives the network an inference or evaluation runs: ``network_def`` itself for one checkpoint
  (loaded later by the bundle's ``WeightsLoader``, exactly as before), the TorchScript file, or a
  :class:`CheckpointEnsemble` of several.
- :class:`CheckpointEnsemble` averages the members' sigmoid probabilities and returns them as logits
  (``logit(mean_i sigmoid(net_i(x)))``, the same trick as :class:`monai_app.engine.inferers.MirrorInferer`), so the
  bundle's sigmoid and 0.5 threshold follow unchanged.
- :class:`EnsembleInferer` runs the whole inference (sliding window, mirroring) once per member of a
  :class:`CheckpointEnsemble` and averages the probabilities, so the ensemble's probability map is exactly the mean
  of the members' maps; overlapping windows blend each member's logits as a single model's run does (the ensemble's
  own ``forward`` would average per window and blend the averages).
"""

from __future__ import annotations

import ast
import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from monai_app.config import load_torchscript
from monai_app.engine.checkpoints import BEST, check_fits, network_weights
from monai_app.engine.inferers import _WrappingInferer, mean_sigmoid_logits
from monai_app.errors import UserInputError

logger = logging.getLogger(__name__)

FOLD_PATTERN = "fold_*"


def _as_list(ckpt_path: Any) -> list[str]:
    """``ckpt_path`` as a list of paths: a list or tuple, a list written as text (``"['a.pt','b.pt']"``, as
    ``python -m monai.bundle run --ckpt_path`` may pass it), or one path."""
    if isinstance(ckpt_path, str) and ckpt_path.strip().startswith("["):
        try:
            ckpt_path = ast.literal_eval(ckpt_path.strip())
        except (ValueError, SyntaxError):
            raise UserInputError(f"--ckpt_path {ckpt_path!r}: not a list of checkpoint files such as "
                                 "['a/model.pt','b/model.pt']") from None
    if isinstance(ckpt_path, (list, tuple)):
        return [str(p) for p in ckpt_path]
    return [] if ckpt_path is None or str(ckpt_path) == "" else [str(ckpt_path)]


def _folder_checkpoints(folder: Path) -> list[str]:
    """The checkpoints a folder stands for: its folds' best models (a folds root), else its own."""
    folds = sorted(p for p in folder.glob(FOLD_PATTERN) if p.is_dir())
    if folds:
        found = [p / "models" / BEST for p in folds]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise UserInputError(f"{folder}: fold run(s) without a trained model ({', '.join(missing)}); train "
                                 "them first (monai-app train ... --folds all) or pass the checkpoints to use")
        return [str(p) for p in found]
    for candidate in (folder / "models" / BEST, folder / BEST):
        if candidate.is_file():
            return [str(candidate)]
    raise UserInputError(f"{folder}: no checkpoint in this folder (looked for fold_*/models/{BEST}, models/{BEST} "
                         f"and {BEST}); pass a checkpoint file or a trained run folder")


def checkpoint_paths(ckpt_path: Any, torchscript_path: str | os.PathLike | None = None) -> list[str]:
    """The checkpoint files ``ckpt_path`` names, in order: each file as given (a missing one too, for
    ``app.check_weights`` to report), each folder resolved to its folds' or its own ``models/model.pt``. Empty when
    a TorchScript file runs instead.

    Raises:
        UserInputError: a folder holds no checkpoint, or fold runs without a trained model; one line naming it.
    """
    if torchscript_path:
        return []
    paths = []
    for entry in _as_list(ckpt_path):
        paths += _folder_checkpoints(Path(entry)) if Path(entry).is_dir() else [entry]
    if not paths:
        raise UserInputError("no checkpoint given: pass --ckpt_path (a checkpoint file, several, or a run folder)")
    return paths


class CheckpointEnsemble(torch.nn.Module):
    """Several copies of one network, each with its own weights; ``forward`` returns the logits of their mean
    sigmoid probability, ``logit(mean_i sigmoid(net_i(x)))``.

    Args:
        members: the networks (each already holding its weights).
    """

    def __init__(self, members: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_sigmoid_logits(net(x) for net in self.members)


class EnsembleInferer(_WrappingInferer):
    """``inferer`` run on each member of a :class:`CheckpointEnsemble` in turn, their sigmoid probabilities averaged
    and returned as logits; any other network is passed to ``inferer`` unchanged.

    Args:
        inferer: the inferer of one network (the sliding window, possibly mirrored).
    """

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(network, CheckpointEnsemble):
            return self.inferer(inputs, network, *args, **kwargs)
        return mean_sigmoid_logits(self.inferer(inputs, member, *args, **kwargs) for member in network.members)


def build_ensemble(network_def: torch.nn.Module, checkpoints: Sequence[str | os.PathLike],
                   device: Any = "cpu") -> CheckpointEnsemble:
    """A :class:`CheckpointEnsemble` of copies of ``network_def``, one per checkpoint, each loaded with
    :func:`monai_app.engine.checkpoints.network_weights` and checked with ``check_fits`` (one line naming a file that
    does not fit), on ``device``."""
    members = []
    for path in checkpoints:
        net = copy.deepcopy(network_def)
        weights = network_weights(path)
        check_fits(path, net, weights)
        net.load_state_dict(weights)
        members.append(net)
    logger.info("ensemble of %d checkpoints: %s", len(members), ", ".join(map(str, checkpoints)))
    return CheckpointEnsemble(members).to(device)


def load_network(network_def: torch.nn.Module, device: Any, checkpoints: Sequence[str | os.PathLike],
                 torchscript_path: str | os.PathLike | None = None) -> torch.nn.Module:
    """The network a run uses: the TorchScript file when given; an ensemble for several checkpoints; else
    ``network_def`` on ``device``, which the bundle's ``WeightsLoader`` fills from the one checkpoint."""
    if torchscript_path:
        return load_torchscript(torchscript_path, device)
    if len(checkpoints) > 1:
        return build_ensemble(network_def, checkpoints, device)
    return network_def.to(device)

