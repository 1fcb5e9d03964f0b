"""Export a bundle's checkpoint to TorchScript and ONNX with MONAI's own exporters, and check each export.

``monai-app export <bundle> --ckpt runs/x/models/model.pt`` writes ``model.ts`` (``monai.bundle.ckpt_export``:
metadata and inference config embedded, runnable with ``--torchscript_path``) and ``model.onnx``
(``monai.bundle.onnx_export``, torch's ``torch.export``-based exporter), then runs PyTorch, TorchScript
(``torch.jit.load``) and ONNX Runtime on the same seeded random input and reports the largest absolute difference from
PyTorch for each. The ONNX model's batch axis is dynamic, and so are the spatial axes ``metadata.json`` declares as
multiples (``"16*n"``: the 2-D bundles); those stay multiples in ONNX too, which cannot pad like BasicUNet does.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_app.config import bundle_path
from monai_app.engine.checkpoints import MODEL, is_training_state, load_objects, read_checkpoint
from monai_app.errors import UserInputError, user_error
from monai_app.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

FORMATS = {"torchscript": "model.ts", "onnx": "model.onnx"}
TOLERANCE = 1e-4  # relative to max(1, largest |output|). Measured (CPU, torch 2.13, onnxruntime 1.31): TorchScript 0,
# ONNX up to 4e-5 absolute / 3e-6 relative on trained networks, 2e-5 on a fresh small 3-D one; a wrong export
# differs by the size of the output itself


def _parser(root: Path, overrides: Mapping[str, Any]):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.read_meta(str(root / "configs" / "metadata.json"))
    parser.update({"bundle_root": str(root), "device": "cpu", **overrides})
    return parser


def _input_shape(parser) -> list[int]:
    """(1, C, *roi_size): channels from metadata.json, the spatial size the bundle's inferer feeds the network."""
    channels = parser["_meta_"]["network_data_format"]["inputs"]["image"]["num_channels"]
    return [1, int(channels), *map(int, parser.get_parsed_content("roi_size"))]


def _dynamic_steps(parser, dynamic_spatial: bool) -> dict[int, int]:
    """{axis: step} of the input axes to export as dynamic: the batch (step 1) and, with ``dynamic_spatial``, each
    spatial axis metadata.json gives as a multiple ("16*n": step 16); a fixed size (BraTS' 64) stays fixed."""
    sizes = parser["_meta_"]["network_data_format"]["inputs"]["image"]["spatial_shape"]
    multiples = [re.fullmatch(r"\s*(\d+)\s*\*\s*n\s*", str(size)) for size in sizes] if dynamic_spatial else []
    return {0: 1, **{axis: int(m[1]) for axis, m in enumerate(multiples, start=2) if m}}


class ExportError(UserInputError, RuntimeError):
    """An export failed, or its output differs from PyTorch's: one line naming the format and the checkpoint, shown
    by ``monai-app`` without a traceback (``--debug`` shows the exporter's); the original exception is its cause."""


def _load_network(parser, ckpt: Path) -> tuple[torch.nn.Module, str]:
    """The bundle's network with the checkpoint's weights, and MONAI's ``key_in_ckpt`` for the exporters: ``""`` for
    a bare state dict (``model.pt``), ``"model"`` for a training state (``last.pt``)."""
    net = parser.get_parsed_content("network_def")
    checkpoint = read_checkpoint(ckpt)  # torch.load(weights_only=True); one-line errors naming the file
    load_objects(ckpt, {MODEL: net}, checkpoint)  # one line for a checkpoint of another network
    return net.eval(), MODEL if is_training_state(checkpoint) else ""


QUIET_LOGGERS = ("ckpt_export", "onnx_export", "monai.bundle.scripts", "onnx_ir", "onnxscript", "torch.onnx")


@contextlib.contextmanager
def _quiet():
    """Keep the exporters' narration (stdout, INFO logs, warnings) out of the user's terminal; stdout goes to the
    debug log."""
    buffer = io.StringIO()
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        logger.debug("exporter output:\n%s", buffer.getvalue())


def _max_diff(reference: torch.Tensor, output) -> float:
    return float(np.max(np.abs(reference.numpy() - np.asarray(output, dtype=np.float32))))


def _export_onnx(path: Path, net, example, reference, steps: dict[int, int], common: dict, result: dict) -> float:
    """``onnx_export`` to ``path``; the largest difference from PyTorch in ONNX Runtime on ``example`` and on a batch
    of 2 one step larger along each dynamic spatial axis (so the dynamic axes are checked too)."""
    import onnx
    import onnxruntime
    from monai.bundle import onnx_export

    names = {a: "batch" if a == 0 else f"size{a}" for a in steps}
    with _quiet():  # torch.onnx narrates every pass on stdout
        onnx_export(filepath=str(path), use_trace=True, converter_kwargs={
            "input_names": ["image"], "output_names": ["pred"], "dynamic_shapes": (names,)}, **common)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bigger = [n + steps.get(a, 0) for a, n in enumerate(example.shape[2:], start=2)]
    other = torch.rand([2, example.shape[1], *bigger], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pairs = [(reference, example), (net(other), other)]
    result["versions"].update(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__)
    result["onnx_dynamic_axes"] = {str(a): "batch" if a == 0 else f"multiple of {n}" for a, n in steps.items()}
    result["onnx_checked_shapes"] = [list(x.shape) for _, x in pairs]
    return max(_max_diff(ref, session.run(None, {"image": x.numpy()})[0]) for ref, x in pairs)


def _export_and_check(fmt: str, path: Path, ckpt: Path, net, example, reference, steps: dict[int, int],
                      common: dict, result: dict) -> float:
    """Export to ``path`` in ``fmt``; the largest difference from PyTorch of the exported model on ``example``.

    Raises:
        ExportError: the exporter, or the exported model's run, failed: one line naming the format, the checkpoint
            and the problem (the original exception is its cause). A user's mistake or a full disk is raised as is.
    """
    from monai.bundle import ckpt_export

    try:
        if fmt == "onnx":
            return _export_onnx(path, net, example, reference, steps, common, result)
        with _quiet():
            ckpt_export(filepath=str(path), use_trace=False, **common)
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            return _max_diff(reference, loaded(example))
    except Exception as exc:
        if user_error(exc) is not None:
            raise
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
        raise ExportError(f"{fmt} export of {ckpt} failed ({detail}); nothing was written") from exc


def _write_exports(out: Path, formats: Sequence[str], export: Callable[[str, Path], float], limit: float,
                   ckpt: Path, result: dict) -> None:
    """Export each of ``formats`` into ``out`` and record it in ``result["exports"]``; all or nothing.

    Each export goes to a temporary file beside its target; the temporary files are renamed only once every format
    passed its check, and all of them are removed when one fails.

    Args:
        out: the output folder.
        formats: the formats to write (keys of ``FORMATS``).
        export: ``export(fmt, path)`` writes ``path`` and returns its largest difference from PyTorch.
        limit: the largest difference allowed.
        ckpt: the checkpoint, named in the errors.
        result: what ``export.json`` will hold.

    Raises:
        ExportError: an export failed, or differs from PyTorch by more than ``limit``.
    """
    with contextlib.ExitStack() as stack:
        for fmt in formats:
            target = out / FORMATS[fmt]
            tmp = stack.enter_context(atomic_path(target))  # renamed when the stack closes without an error
            diff = export(fmt, tmp)
            if not diff <= limit:
                raise ExportError(f"{fmt} export of {ckpt} differs from PyTorch by {diff:.3g} (limit {limit:.3g}); "
                                   "nothing was written")
            result["exports"][fmt] = {"file": str(target.resolve()), "size_mb": round(tmp.stat().st_size / 2**20, 2),
                                      "max_abs_diff": diff}
    for fmt, written in result["exports"].items():
        logger.info("%s: %s, max |difference| from PyTorch %.3g", fmt, written["file"], written["max_abs_diff"])


def _checked_arguments(bundle: str | os.PathLike, ckpt_path: str | os.PathLike,
                       formats: Sequence[str]) -> tuple[Path, Path]:
    """The bundle folder and the checkpoint path, once both exist and every format is known.

    Raises:
        UserInputError: unknown bundle or format, or a missing checkpoint.
    """
    root, ckpt = bundle_path(bundle), Path(ckpt_path)
    if not ckpt.is_file():
        raise UserInputError(f"{ckpt}: checkpoint file does not exist")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UserInputError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    return root, ckpt


def export_bundle(bundle: str | os.PathLike, ckpt_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                  formats: Sequence[str] = ("torchscript", "onnx"), overrides: Mapping[str, Any] | None = None,
                  dynamic_spatial: bool = True, record: bool = True) -> dict:
    """Export ``ckpt_path`` of ``bundle`` and check each export against PyTorch; returns what ``export.json`` holds.

    The checkpoint is a run's ``model.pt`` (a state dict) or ``last.pt`` (a training state: its ``"model"`` weights
    are exported). ``dynamic_spatial=False`` gives an ONNX model of the check input's spatial size only (for runtimes
    that want fixed shapes; also faster to export: 4.6 s instead of 6-8 s for Carvana's UNet on 2 CPU cores). Nothing
    is written unless every requested format passed its check; ``record=False`` writes no ``export.json`` (which
    holds absolute paths).

    Raises:
        UserInputError: unknown bundle or format, or a checkpoint that is missing or does not fit the network.
        ExportError: an export that failed, or whose output differs from PyTorch's by more than the tolerance (a
            :class:`UserInputError` and a ``RuntimeError``).
    """
    import monai

    root, ckpt = _checked_arguments(bundle, ckpt_path, formats)
    out = Path(out_dir) if out_dir else ckpt.parent
    out.mkdir(parents=True, exist_ok=True)
    overrides = {"ckpt_path": str(ckpt), **(overrides or {})}  # network_def fits its output channels (brats: RC)
    parser = _parser(root, overrides)
    shape = _input_shape(parser)
    net, key_in_ckpt = _load_network(parser, ckpt)  # fails early, in one line, on a checkpoint of another network
    example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = net(example)
    common = {"net_id": "network_def", "ckpt_file": str(ckpt), "key_in_ckpt": key_in_ckpt,
              "meta_file": str(root / "configs" / "metadata.json"),
              "config_file": str(root / "configs" / "inference.json"), "input_shape": shape,
              "bundle_root": str(root), "device": "cpu", **overrides}
    limit = TOLERANCE * max(1.0, float(reference.abs().max()))
    result = {"bundle": root.name, "checkpoint": str(ckpt.resolve()), "input_shape": shape,
              "max_abs_output": float(reference.abs().max()), "max_abs_diff_allowed": limit,
              "versions": {"monai": monai.__version__, "torch": torch.__version__}, "exports": {}}
    export = functools.partial(_export_and_check, ckpt=ckpt, net=net, example=example, reference=reference,
                               steps=_dynamic_steps(parser, dynamic_spatial), common=common, result=result)
    _write_exports(out, formats, export, limit, ckpt, result)
    if record:
        atomic_write_text(out / "export.json", json.dumps(result, indent=1) + "\n")
    return result


def format_export(result: Mapping) -> str:
    """The export as a small table: format, file, size and the largest difference from PyTorch."""
    rows = [("format", "file", "size (MB)", "max |diff| vs PyTorch")]
    rows += [(fmt, e["file"], f"{e['size_mb']:.2f}", f"{e['max_abs_diff']:.2e}")
             for fmt, e in result["exports"].items()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    shape = lambda s: "x".join(map(str, s))  # noqa: E731
    onnx_also = [shape(s) for s in result.get("onnx_checked_shapes", [])[1:]]
    checked = f"a random input of shape {shape(result['input_shape'])}" + (
        f" (ONNX also on {', '.join(onnx_also)}, dynamic axes: {result['onnx_dynamic_axes']})" if onnx_also else "")
    return "\n".join([f"{result['bundle']}: checked on {checked}", *lines])
