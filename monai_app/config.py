"""Running bundles: locating them, running a config workflow, and the small glue their configs call."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_app.errors import UserInputError

logger = logging.getLogger(__name__)


def find_bundle_root() -> str:
    """The bundle folder of the config being run.

    ``python -m monai.bundle run ... --config_file bundles/x/configs/train.json`` does not tell a config where it
    lies; this reads ``--config_file`` from the command line so relative defaults work from any folder, and falls
    back to the current folder (MONAI's convention, for runs from inside the bundle).
    """
    argv = sys.argv
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg in ("--config_file", "--config-file") and i + 1 < len(argv) else \
            arg.split("=", 1)[1] if arg.startswith("--config_file=") else None
        if value:
            first = value.strip("[]'\" ").split(",")[0].strip("'\" ")
            configs = Path(first).resolve().parent
            return str(configs.parent if configs.name == "configs" else configs)
    return "."


_MORE_SWITCH_WORDS = {"on": True, "off": False, "none": False, "": False}


def flag(value: Any, key: str = "value") -> bool:
    """A config switch as a bool. ``python -m monai.bundle run ... --amp false`` hands the config the *string*
    ``'false'``, which Python finds true; ``monai-app`` and Python callers pass real booleans. Accepts what MONAI's
    ``str2bool`` does (bools, true/false, yes/no, t/f, y/n, 1/0 in any case), numbers 0/1 and on/off; anything else
    is a user error naming the key."""
    from monai.utils import str2bool

    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    try:
        return _MORE_SWITCH_WORDS[text] if text in _MORE_SWITCH_WORDS else str2bool(text)
    except ValueError:
        raise UserInputError(f"--{key}: expected true or false, got {value!r}") from None


def default_workers() -> int:
    """Loader worker processes by default: none where this process may use <= 2 cores (there they only take CPU
    from the network: +9 % to +167 % of a training step, BENCHMARKS.md §2), else min(4, cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores)


def bundles_dir() -> Path:
    """The folder holding the bundles: ``$MONAI_APP_BUNDLES``, else ``bundles/`` beside the package source."""
    env = os.environ.get("MONAI_APP_BUNDLES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "bundles"


def bundle_path(name_or_path: str | os.PathLike) -> Path:
    """A bundle folder given its name (``brats_unet3d``) or its path."""
    path = Path(name_or_path)
    if not (path / "configs").is_dir():
        path = bundles_dir() / str(name_or_path)
    if not (path / "configs" / "metadata.json").is_file():
        known = sorted(p.name for p in bundles_dir().glob("*") if (p / "configs").is_dir())
        raise UserInputError(f"unknown bundle {name_or_path!r}; available: {', '.join(known) or 'none'}")
    return path


def check_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return ``path`` if it is a file, else raise a :class:`UserInputError` naming it."""
    if not Path(path).is_file():
        raise UserInputError(f"{path}: {what} does not exist")
    return str(path)


def load_torchscript(path: str | os.PathLike, device) -> Any:
    """A TorchScript network (``monai-app export``'s ``model.ts``) on ``device``; a clear error for a missing or
    foreign file."""
    import torch

    check_file(path, "TorchScript file (--torchscript_path)")
    try:
        return torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise UserInputError(f"{path}: not a TorchScript file ({str(exc).strip().splitlines()[0]}); make one with "
                             "`monai-app export BUNDLE --ckpt model.pt`") from exc


def log_summary(eval_dir: str | os.PathLike) -> dict:
    """Log the mean of every metric of an evaluation as one table; returns ``summary.json``'s content."""
    summary = json.loads((Path(eval_dir) / "summary.json").read_text())
    width = max([10, *map(len, summary)])
    lines = [f"{'metric':<{width}} {'mean':>9} {'median':>9} {'std':>9}  n"]
    fmt = lambda v: f"{v:9.4f}" if isinstance(v, (int, float)) else f"{'n/a':>9}"
    lines += [f"{k:<{width}} {fmt(v['mean'])} {fmt(v['median'])} {fmt(v['std'])}  {v['n']}" for k, v in summary.items()]
    logger.info("evaluation of %s:\n%s", eval_dir, "\n".join(lines))
    return summary


def log_outputs(output_dir: str | os.PathLike, datalist: Sequence[Mapping], cases=None) -> None:
    """Log how many cases were segmented and where the outputs are; the last step of an inference run.

    Args:
        output_dir: the folder of the label maps.
        datalist: the cases given to the run.
        cases: the evaluator's :class:`monai_app.engine.failsafe.SkipFailedCases`, when it has one: then the count is of
            the cases written, and failed cases are listed on stderr and end the run with a :class:`UserInputError`
            (a non-zero exit), after every good case was written.
    """
    if cases is not None:
        return cases.report(str(output_dir))
    logger.info("segmented %d case(s); label maps in %s", len(datalist), Path(output_dir).resolve())


def save_settings(path: str | os.PathLike, settings: Mapping[str, Any], **extra: Any) -> None:
    """Save a run's effective settings (every override key, resolved) and the library versions as JSON, so a
    result can be traced to how it was made."""
    import platform

    import monai
    import torch

    from monai_app import __version__
    from monai_app.files import atomic_write_text

    record = {**{k: v for k, v in settings.items()}, **extra, "argv": sys.argv,
              "versions": {"monai_app": __version__, "monai": monai.__version__, "torch": torch.__version__,
                           "python": platform.python_version()},
              "hardware": {"cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.is_available(),
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
