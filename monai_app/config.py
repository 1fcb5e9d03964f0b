"""What the bundles' configs call (``"$import monai_app.config as app"``, then ``$app.flag(...)``...), and where the
bundles are.

Everything here is small glue for config expressions: switches parsed once (:func:`flag`), worker defaults, the bundle
folder (:func:`bundle_root`), loading a network or a TorchScript file and the output channels of a checkpoint
(:func:`out_channels`), checks of user-given files with clear errors, and the run records (settings, summaries).
:func:`install_error_hook` and :func:`check_output_dir` are re-exported so configs need this one module for their
helpers. It depends only on :mod:`monai_app.errors` and :mod:`monai_app.files`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from monai_app import __version__
from monai_app.errors import UserInputError, install_error_hook
from monai_app.files import atomic_write_text, check_output_dir

__all__ = ["bundle_root", "bundles_dir", "bundle_path", "flag", "cuda_amp", "default_workers", "check_file",
           "check_weights", "load_network", "out_channels", "choice", "load_torchscript", "log_summary", "log_outputs",
           "save_settings", "install_error_hook", "check_output_dir"]

logger = logging.getLogger(__name__)


CONFIG_FILE_OPTIONS = ("--config_file", "--config-file")


def _config_file_argument(argv: Sequence[str]) -> str | None:
    """The first file of ``--config_file`` / ``--config-file`` (``X``, ``=X``, or a list ``"['a.json','b.json']"``)
    on a ``python -m monai.bundle run`` command line, as Fire accepts them; None when there is none."""
    for i, arg in enumerate(argv):
        name, equals, value = arg.partition("=")
        if name not in CONFIG_FILE_OPTIONS:
            continue
        value = value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
        first = value.strip("[]()'\" ").split(",")[0].strip("'\" ")
        if first:
            return first
    return None


def _bundle_folder(path: Path) -> Path | None:
    """The bundle holding ``path`` (a config file or a bundle's ``configs`` folder), if it is one."""
    for candidate in (path.parent, path.parent.parent, path):
        if (candidate / "configs" / "metadata.json").is_file():
            return candidate
    return None


def bundle_root(name: str | None = None) -> str:
    """The folder of the bundle whose config is being parsed, so relative defaults work from any folder.

    A config cannot see its own path, so this looks, in order, at the config file named on a
    ``python -m monai.bundle run ... --config_file PATH`` command line (every spelling Fire accepts), then at the
    bundle ``name`` among the installed ones (:func:`bundles_dir`), and falls back to the current folder (MONAI's
    convention for runs from inside a bundle). ``--bundle_root`` on the command line, or ``bundle_root=`` given to
    ``ConfigWorkflow``, overrides it.

    Args:
        name: the bundle's name (``brats_unet3d``): each bundle's configs pass their own.
    """
    argument = _config_file_argument(sys.argv)
    found = _bundle_folder(Path(argument).resolve()) if argument else None
    if found is None and name:
        installed = bundles_dir() / name
        found = installed if (installed / "configs" / "metadata.json").is_file() else None
    return str(found) if found is not None else "."


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
    """The folder holding the bundles, in this order:

    1. ``$MONAI_APP_BUNDLES`` when set;
    2. the repository's ``bundles/`` when the package runs from a checkout (an editable install, or the repository
       on ``sys.path``): the folder beside ``monai_app/`` that also holds ``pyproject.toml``;
    3. the bundles installed with the package: the wheel carries the repository's ``bundles/`` as
       ``monai_app/bundles`` (configs, model cards, data files; never weights).
    """
    env = os.environ.get("MONAI_APP_BUNDLES")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "bundles").is_dir():
        return checkout / "bundles"
    return Path(str(resources.files("monai_app") / "bundles"))


def bundle_path(name_or_path: str | os.PathLike) -> Path:
    """A bundle folder given its name (``brats_unet3d``) or its path."""
    path = Path(name_or_path)
    if not (path / "configs").is_dir():
        path = bundles_dir() / str(name_or_path)
    if not (path / "configs" / "metadata.json").is_file():
        known = sorted(p.name for p in bundles_dir().glob("*") if (p / "configs").is_dir())
        raise UserInputError(f"unknown bundle {name_or_path!r}; available: {', '.join(known) or 'none'} "
                             f"(in {bundles_dir()}; $MONAI_APP_BUNDLES sets the folder)")
    return path


def check_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return ``path`` if it is a file, else raise a :class:`UserInputError` naming it."""
    if not Path(path).is_file():
        raise UserInputError(f"{path}: {what} does not exist")
    return str(path)


def check_weights(ckpt_path: str | os.PathLike | Sequence[str | os.PathLike] | None,
                  torchscript_path: str | os.PathLike | None = None) -> str | list[str]:
    """The weights an inference or evaluation run will load: the TorchScript file when one is given, else the
    checkpoint, or each checkpoint of a list (an ensemble); a :class:`UserInputError` naming the missing file and the
    option that sets it."""
    if torchscript_path:
        return check_file(torchscript_path, "TorchScript file (--torchscript_path)")
    if isinstance(ckpt_path, (list, tuple)):
        return [check_file(p, "checkpoint (pass --ckpt_path)") for p in ckpt_path]
    return check_file(ckpt_path, "checkpoint (pass --ckpt_path)")


def load_network(network_def: Any, device: Any, torchscript_path: str | os.PathLike | None = None) -> Any:
    """The network to run: ``network_def`` on ``device``, or the TorchScript file ``torchscript_path`` when given
    (``monai-app export``'s ``model.ts``; then ``network_def`` is left unused)."""
    return load_torchscript(torchscript_path, device) if torchscript_path else network_def.to(device)


def out_channels(ckpt_path: str | os.PathLike | Sequence[str | os.PathLike] | None,
                 torchscript_path: str | os.PathLike | None = None, default: int = 3) -> int:
    """The output channels of the network a checkpoint holds, so inference builds ``network_def`` to fit it: the
    length of the last 1-D tensor of its weights (the bias of the output convolution, the last layer of MONAI's
    UNet). A bare state dict and ``last.pt`` (weights under ``"model"``) are both read, memory-mapped (nothing else
    of the file is loaded), with ``weights_only``. Of a list of checkpoints (an ensemble), the first is read.

    ``default`` where there is nothing to read: a TorchScript file runs instead (``network_def`` is unused), or the
    checkpoint is missing or unreadable (then :func:`check_weights` or the loader reports it, naming the file).
    """
    import torch

    if isinstance(ckpt_path, (list, tuple)):
        ckpt_path = ckpt_path[0] if ckpt_path else None
    if torchscript_path or not ckpt_path or not Path(ckpt_path).is_file():
        return default
    try:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # reported with its file by the loader (engine.checkpoints.read_checkpoint)
        return default
    weights = state.get("model", state) if isinstance(state, Mapping) else None
    if not isinstance(weights, Mapping):
        return default
    vectors = [v for v in weights.values() if isinstance(v, torch.Tensor) and v.ndim == 1]
    return int(vectors[-1].shape[0]) if vectors else default


def choice(value: Any, options: Mapping[str, Any], key: str) -> Any:
    """``options[value]``: what a config's named option (``patch_sampling``, ``val_metric``) selects.

    Raises:
        UserInputError: ``value`` names no option; the message names the key and the choices.
    """
    name = str(value).strip().lower()
    if name not in options:
        raise UserInputError(f"--{key} {value!r}: expected one of {', '.join(options)}")
    return options[name]


def tta_axes(tta: Any, spatial_dims: int = 3) -> list[int]:
    """The axes the ``tta`` switch mirrors: none for ``false``, every spatial axis for ``true`` / ``all``, or the
    listed ones (``[0, 1]``: X and Y only).

    Raises:
        UserInputError: ``tta`` is no switch and no list of distinct axes below ``spatial_dims``.
    """
    if isinstance(tta, str) and tta.strip().startswith("["):  # `--tta "[0,1]"` through python -m monai.bundle
        try:
            tta = json.loads(tta)
        except ValueError:
            raise UserInputError(f"--tta {tta!r}: not a list of axes such as [0, 1]") from None
    if isinstance(tta, (list, tuple)):
        axes = [a for a in tta if isinstance(a, int) and not isinstance(a, bool) and 0 <= a < spatial_dims]
        if len(axes) != len(tta) or len(set(axes)) != len(axes):
            raise UserInputError(f"--tta {list(tta)!r}: give true, false, or a list of distinct axes among "
                                 f"{list(range(spatial_dims))}")
        return axes
    if str(tta).strip().lower() == "all":
        return list(range(spatial_dims))
    return list(range(spatial_dims)) if flag(tta, "tta") else []


POSTPROCESSING_FILE = "postprocessing.json"


def postprocessing_rules(value: Any, run_dir: str | os.PathLike | None = None, ckpt_path: Any = None) -> str | None:
    """The ``postprocessing.json`` an evaluation or inference applies (``postprocessing_rules``): for ``auto`` the
    run folder's file when it exists (``run_dir``, a checkpoint folder (a run or a folds root), or the run of a
    checkpoint ``<run>/models/<file>.pt``; a list of checkpoints has no single run, so nothing), for ``none``
    nothing, else the given file.

    Raises:
        UserInputError: a file named by the user does not exist.
    """
    text = "none" if value is None or value is False else str(value).strip()
    if text.lower() in ("none", "false", "off", ""):
        return None
    if text.lower() != "auto":
        return check_file(text, "postprocessing rules file (--postprocessing_rules)")
    if run_dir is None and isinstance(ckpt_path, (str, os.PathLike)) and Path(ckpt_path).is_dir():
        run_dir = ckpt_path  # a run folder, or a folds root whose ensemble `monai-app postprocess ROOT` chose for
    elif run_dir is None and isinstance(ckpt_path, (str, os.PathLike)) and Path(ckpt_path).suffix == ".pt":
        run_dir = Path(ckpt_path).parent.parent if Path(ckpt_path).parent.name == "models" else None
    found = Path(run_dir) / POSTPROCESSING_FILE if run_dir is not None else None
    return str(found) if found is not None and found.is_file() else None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_amp(device: Any) -> bool:
    """brats_unet3d's default ``amp``: on for CUDA (float16 autocast), and on the CPU where oneDNN runs bfloat16
    natively (AVX512-BF16 or AMX: 1.4-1.8x cheaper training steps, 1.6x faster inference windows, BENCHMARKS.md), off
    where bfloat16 would be emulated, slower than float32."""
    import torch

    kind = torch.device(str(device)).type
    return kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16())


def cuda_amp(amp: Any, device: Any) -> bool:
    """Whether an engine should autocast: the ``amp`` switch (``@switches#amp``), on a CUDA device only. MONAI's
    engines autocast with ``torch.autocast("cuda")``, which only warns on the CPU (bf16 on the CPU is the
    AutocastInferer's job, brats_unet3d's inference)."""
    import torch

    return flag(amp, "amp") and torch.device(device).type == "cuda"


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
    result can be traced to how it was made. ``extra`` values that are objects (a loss, an optimizer) are recorded
    by their class name."""
    import platform

    import monai
    import torch


    plain = (str, int, float, bool, type(None), list, tuple, dict)
    extra = {k: v if isinstance(v, plain) else type(v).__name__ for k, v in extra.items()}  # a loss: its class name
    record = {**settings, **extra, "argv": sys.argv,
              "versions": {"monai_app": __version__, "monai": monai.__version__, "torch": torch.__version__,
                           "python": platform.python_version()},
              "hardware": {"cpu": platform.processor() or platform.machine(), "cuda": torch.cuda.is_available(),
                           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}}
    atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
