"""``monai-app package``: a trained and evaluated run as a self-contained MONAI bundle, in the MONAI Model Zoo's
layout, ready to share (a zip, the Model Zoo, the Hugging Face Hub with ``monai.bundle push_to_hf_hub``).

:func:`package_run` writes ``OUT/<bundle>/`` and ``OUT/<bundle>_v<version>.zip`` of it::

    LICENSE
    large_files.yml       the weight files with their sha256, as the zoo lists large files (urls to fill in)
    configs/              the bundle's configs with the run's settings; metadata.json: patch version, changelog,
                          eval_metrics, the exact package versions, the network's channels and patch size
    docs/README.md        the model card, filled from the run (monai_app.model_card)
    docs/data_license.txt
    models/model.pt       the run's best weights (a state dict)
    models/model.ts       TorchScript with metadata.json and inference.json embedded (monai.bundle.ckpt_export)
    models/model.onnx     ONNX, where the exporter succeeds

Both are assembled in a temporary folder beside them and renamed into place at the end: an error leaves nothing
half-written, and a previous package of the same bundle is replaced only by a complete one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from datetime import date
from importlib import metadata as dist
from pathlib import Path
from typing import Any

import torch

from monai_app.config import POSTPROCESSING_FILE, bundle_path, out_channels
from monai_app.engine.checkpoints import is_training_state, network_weights, read_checkpoint
from monai_app.errors import UserInputError
from monai_app.export import ExportError, export_bundle
from monai_app.model_card import RunRecord, headline, metric_means, model_card, read_run

logger = logging.getLogger(__name__)

ZOO_FILE_LIMIT = 25 * 10**6  # bytes: the Model Zoo's limit for a file in its repository (CONTRIBUTING.md)
URL_PLACEHOLDER = "https://FILL-IN.invalid"  # .invalid never resolves (RFC 2606): obviously a placeholder
PACKAGED_ROOT = "$app.bundle_root()"  # the folder of the config file run, else the current folder; never the repo's
# settings that describe where and how a run ran, not the model: not written into the packaged configs
NOT_CARRIED = {"dataset_dir", "output_dir", "input", "ckpt_path", "torchscript_path", "cache_rate", "cache_dir",
               "device", "amp", "num_workers", "debug", "resume", "skip_existing", "validate_data", "bundle_root",
               "fold"}  # a fold run's package trains and runs as one model
INFERENCE_NOT_CARRIED = {"dataset_format"}  # inference writes its input's label convention


def zoo_json(data: Any) -> str:
    """JSON as the Model Zoo's ``pretty-format-json --no-sort-keys --indent=4`` hook writes it."""
    return json.dumps(data, indent=4, ensure_ascii=True, separators=(",", ": ")) + "\n"


def _expression(value: Any) -> bool:
    return isinstance(value, str) and value[:1] in ("$", "@", "%")


def _same_kind(old: Any, new: Any) -> bool:
    """Whether ``new`` may replace the plain config value ``old``: a switch by a switch, a number by a number, a
    list by a list, a word by a word that is not a path (paths name the run's machine, not the model)."""
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, (int, float)):
        return isinstance(new, (int, float))
    if isinstance(old, str):
        return isinstance(new, str) and not _expression(old) and not re.search(r"[/\\:]", new)
    return isinstance(old, list) and isinstance(new, list)


def _carry(config: dict, settings: dict, skip: set[str]) -> dict:
    """Write the run's value of each top-level key ``config`` holds as a plain value of the same kind (expressions
    and components are left alone); the keys changed, with their new values."""
    changed = {}
    for key, value in settings.items():
        if key not in skip and key in config and value != config[key] and _same_kind(config[key], value):
            config[key] = changed[key] = value
    return changed


def _write_configs(source: Path, target: Path, settings: dict) -> dict:
    """The bundle's configs into ``target`` (JSON in the zoo's format), ``bundle_root`` made to follow the packaged
    folder and the run's settings carried; returns the settings carried."""
    carried: dict = {}
    target.mkdir(parents=True)
    for path in sorted(p for p in source.iterdir() if p.is_file() and p.name != "metadata.json"):
        if path.suffix != ".json":
            shutil.copyfile(path, target / path.name)
            continue
        config = json.loads(path.read_text())
        if isinstance(config, dict) and "bundle_root" in config:
            config["bundle_root"] = PACKAGED_ROOT
            skip = NOT_CARRIED | (INFERENCE_NOT_CARRIED if path.name == "inference.json" else set())
            carried.update(_carry(config, settings, skip))
        (target / path.name).write_text(zoo_json(config))
    return carried


def _installed(name: str) -> str:
    """The installed version of distribution ``name`` without a local tag (``2.13.0+cpu`` -> ``2.13.0``: what
    ``pip install name==version`` finds on PyPI)."""
    try:
        return dist.version(name).split("+")[0]
    except dist.PackageNotFoundError:
        raise UserInputError(f"the bundle needs {name}, which is not installed here, so no version of it can be "
                             f"recorded; install it (pip install {name}) and package again") from None


def bump(version: str) -> str:
    """``0.3.0`` -> ``0.3.1``."""
    found = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not found:
        raise UserInputError(f"metadata.json version {version!r} is not MAJOR.MINOR.PATCH")
    return f"{found[1]}.{found[2]}.{int(found[3]) + 1}"


def _shapes(fmt: dict, channels: int, roi: list | None) -> None:
    """The output channels the weights have (and their channel names), and a fixed patch size the run's."""
    fmt["outputs"]["pred"]["num_channels"] = channels
    names = fmt["outputs"]["pred"].get("channel_def")
    if isinstance(names, dict):
        fmt["outputs"]["pred"]["channel_def"] = {k: v for k, v in names.items() if int(k) < channels}
    for tensor in (fmt["inputs"]["image"], fmt["outputs"]["pred"]):
        fixed = all(isinstance(n, int) for n in tensor["spatial_shape"])
        if roi and fixed and len(roi) == len(tensor["spatial_shape"]):
            tensor["spatial_shape"] = [int(n) for n in roi]


def _metadata(meta: dict, run: RunRecord, weights: Path) -> dict:
    """The packaged ``metadata.json``: next patch version with its changelog entry, the run's scores as
    ``eval_metrics``, the installed versions, the weights' output channels."""
    meta = json.loads(json.dumps(meta))
    version, score = bump(meta["version"]), headline(run.summary)
    n = max((v.get("n", 0) for v in run.summary.values() if isinstance(v, dict)), default=0)
    entry = (f"trained weights of the run folder {run.path.resolve().name} ({date.today().isoformat()})" +
             (f": held-out {score[0]} {score[1]:.4f} on {n} case(s)" if score else ""))
    meta["version"], meta["changelog"] = version, {version: entry, **meta.get("changelog", {})}
    meta["monai_version"], meta["numpy_version"] = _installed("monai"), _installed("numpy")
    meta["pytorch_version"] = _installed("torch")
    needed = [*meta.get("required_packages_version", {}), "monai-app"]  # the configs import monai_app
    meta["required_packages_version"] = {name: _installed(name) for name in dict.fromkeys(needed)}
    meta["eval_metrics"] = metric_means(run.summary)
    default = meta["network_data_format"]["outputs"]["pred"]["num_channels"]
    _shapes(meta["network_data_format"], out_channels(weights, default=default), run.settings.get("roi_size"))
    return meta


def _write_weights(ckpt: Path, target: Path) -> None:
    """The run's weights as a state dict: ``model.pt`` copied byte for byte, a training state's weights saved."""
    checkpoint = read_checkpoint(ckpt)
    weights = network_weights(ckpt, checkpoint)  # one line for a file holding no weights
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_training_state(checkpoint):
        torch.save(weights, target)
    else:
        shutil.copyfile(ckpt, target)


def _exports(folder: Path) -> tuple[dict, str | None]:
    """TorchScript (required: the zoo checks it) and ONNX (kept where it succeeds) of ``models/model.pt``; the
    exports' record and why ONNX was left out (None when it was not)."""
    ckpt, models = folder / "models" / "model.pt", folder / "models"
    narrator = logging.getLogger("monai_app.export")  # its lines name the temporary folder; format_package lists
    level = narrator.level  # the files where they end up
    narrator.setLevel(logging.WARNING)
    try:
        result = export_bundle(folder, ckpt, out_dir=models, formats=("torchscript",), record=False)
        try:
            onnx = export_bundle(folder, ckpt, out_dir=models, formats=("onnx",), record=False)
        except ExportError as exc:
            logger.warning("ONNX left out of the package: %s", exc)
            return result, str(exc)
    finally:
        narrator.setLevel(level)
    result["exports"].update(onnx["exports"])
    return result, None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def large_files_yml(folder: Path, name: str, version: str) -> str:
    """``large_files.yml`` in the zoo's format: every weight file of ``folder/models`` with its sha256."""
    lines = ["# The weight files of this bundle, listed as the MONAI Model Zoo lists large files (its CONTRIBUTING.md:",
             "# 'Prepare a config file for large files'). Before publishing, upload each file (a GitHub release, a",
             f"# Hugging Face repository...) and replace its url, a placeholder under {URL_PLACEHOLDER}, with the",
             "# download link. hash_val is the sha256 of the file as packaged.", "large_files:"]
    for path in sorted((folder / "models").iterdir()):
        rel = path.relative_to(folder).as_posix()
        lines += [f"- path: {json.dumps(rel)}", f"  url: {json.dumps(f'{URL_PLACEHOLDER}/{name}_v{version}/{rel}')}",
                  f"  hash_val: {json.dumps(_sha256(path))}", '  hash_type: "sha256"']
    return "\n".join(lines) + "\n"


def _zip(folder: Path, target: Path) -> None:
    """``folder`` as a zip whose entries start with the folder's name (as the zoo's releases and
    ``monai.bundle.download`` have them)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")


def _assemble(root: Path, run: RunRecord, folder: Path) -> dict:
    """Every file of the package into ``folder``; what :func:`package_run` returns, less the final paths."""
    carried = _write_configs(root / "configs", folder / "configs", run.settings)
    _write_weights(run.ckpt, folder / "models" / "model.pt")
    meta = _metadata(json.loads((root / "configs" / "metadata.json").read_text()), run, folder / "models" / "model.pt")
    (folder / "configs" / "metadata.json").write_text(zoo_json(meta))  # before the exports, which embed it
    exports, onnx_problem = _exports(folder)
    (folder / "docs").mkdir()
    shutil.copyfile(root / "LICENSE", folder / "LICENSE")
    shutil.copyfile(root / "docs" / "data_license.txt", folder / "docs" / "data_license.txt")
    card = model_card((root / "docs" / "README.md").read_text(), meta, run, exports, carried)
    (folder / "docs" / "README.md").write_text(card)
    if (run.path / POSTPROCESSING_FILE).is_file():  # the packaged inference.json finds it (postprocessing_rules auto)
        (folder / POSTPROCESSING_FILE).write_text(zoo_json(json.loads((run.path / POSTPROCESSING_FILE).read_text())))
    (folder / "large_files.yml").write_text(large_files_yml(folder, root.name, meta["version"]))
    return {"bundle": root.name, "version": meta["version"], "carried": carried, "exports": exports,
            "onnx_left_out": onnx_problem}


def _replace(new: Path, target: Path, trash: Path) -> None:
    """Rename ``new`` onto ``target``; a previous ``target`` folder is moved to ``trash`` first."""
    if target.is_dir():
        os.replace(target, trash)
    elif target.exists():
        raise UserInputError(f"{target}: is a file; the package folder cannot be written there")
    os.replace(new, target)


def package_run(bundle: str | os.PathLike, run_dir: str | os.PathLike, out_dir: str | os.PathLike,
                ckpt: str | os.PathLike | None = None) -> dict:
    """Package the trained and evaluated run ``run_dir`` of ``bundle`` into ``out_dir`` (see the module docstring).

    Args:
        bundle: the bundle's name or folder.
        run_dir: the run folder (``output_dir`` of ``monai-app train`` and ``evaluate``).
        out_dir: where ``<bundle>/`` and ``<bundle>_v<version>.zip`` are written.
        ckpt: the weights to package instead of ``run_dir/models/model.pt`` (a ``model.pt`` or a ``last.pt``).

    Returns:
        ``bundle``, ``version``, ``folder``, ``zip``, ``files`` (relative path: bytes), ``carried`` (the run's
        settings written into the configs), ``exports`` (as ``export_bundle`` returns them) and ``onnx_left_out``
        (why ONNX is missing, or None).

    Raises:
        UserInputError: an unknown bundle; a run without evaluation, best checkpoint or settings; weights that do
            not fit the bundle's network; a package that cannot be written.
    """
    root, run = bundle_path(bundle), read_run(run_dir, ckpt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{root.name}.") as tmp:
        folder = Path(tmp) / root.name
        result = _assemble(root, run, folder)
        zip_name = f"{root.name}_v{result['version']}.zip"
        _zip(folder, Path(tmp) / zip_name)
        files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
        _replace(folder, out / root.name, Path(tmp) / "previous")
        os.replace(Path(tmp) / zip_name, out / zip_name)
    logger.info("packaged %s v%s from %s into %s", root.name, result["version"], run.path, out / root.name)
    return {**result, "folder": str(out / root.name), "zip": str(out / zip_name), "files": files}


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def format_package(result: dict) -> str:
    """The package as a tree with sizes, and what to do before publishing it."""
    lines = [f"{result['folder']}/  (version {result['version']})"]
    lines += [f"  {path:<32} {_size(size):>10}" for path, size in result["files"].items()]
    lines.append(f"{result['zip']}  {_size(Path(result['zip']).stat().st_size)}")
    big = [p for p, size in result["files"].items() if size > ZOO_FILE_LIMIT]
    if big:
        lines.append(f"over the Model Zoo's 25 MB file limit (keep them out of a zoo pull request; large_files.yml "
                     f"lists them): {', '.join(big)}")
    if result["onnx_left_out"]:
        lines.append(f"no ONNX model: {result['onnx_left_out']}")
    lines.append(f"before publishing: replace the {URL_PLACEHOLDER}/... urls in large_files.yml with the files' "
                 "download links")
    return "\n".join(lines)
