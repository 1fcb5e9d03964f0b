"""Inference over a folder that survives bad cases: each one is reported by name with its problem on one line, the
good ones are still segmented, and the run exits non-zero at the end.

- :class:`FailSafeDataset` wraps a dataset: when loading or preprocessing one case fails it returns a marker item
  instead of raising, inside a ``DataLoader`` worker too, so the error never crosses the process boundary.
- :class:`SkipFailedCases` is a ``SupervisedEvaluator`` ``iteration_update``: marked cases are skipped, and a
  failure of inference, postprocessing or writing of one case is recorded instead of stopping the run. An
  :class:`~monai_app.files.OutputError` (a full disk, a folder that is not writable) does stop it: every later case
  would fail the same way. :meth:`SkipFailedCases.report` ends the run: the failures, then a non-zero exit.
- :func:`describe`: an exception of one case as ``<file>: <problem>``.

Inference batches hold one case (``batch_size`` 1): a marker and a loaded case could not be collated together.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from monai_app.errors import UserInputError, debug_requested, exception_chain, message, user_error
from monai_app.files import NO_SPACE, OutputError

logger = logging.getLogger(__name__)

FAILURE_KEY = "case_failure"  # the marker item's problem, one line
TRACEBACK_KEY = "case_traceback"  # and its traceback, logged with --debug true
INPUT_ERROR_KEY = "input_error"  # a datalist item that could not even be listed properly (a missing modality file)

_FORMAT_NAMES = {".nii.gz": "NIfTI", ".nii": "NIfTI", ".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage",
           ".mhd": "MetaImage", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WebP"}
_TRANSFORM = re.compile(r"applying transform <?([\w.]+)")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception): (.+)$", re.MULTILINE)
_TRUNCATED = re.compile(r"truncated|ended before|Expected \d+ bytes|unexpected end", re.IGNORECASE)


def _detail(exc: BaseException, files: Sequence[str]) -> str:
    """The first line of ``exc``'s message, with a reader's own message pulled out of MONAI's "cannot find a
    suitable reader" text (which embeds every reader's traceback) and file paths shortened to names."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        found = _EXCEPTION_LINE.search(text.split("Traceback (most recent call last)", 1)[1])
        text = found.group(1) if found else text
    for f in files:
        text = text.replace(str(Path(f).resolve()), Path(f).name).replace(str(f), Path(f).name)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _format_name(path: str) -> str:
    name = path.lower()
    return next((f for ext, f in _FORMAT_NAMES.items() if name.endswith(ext)), "image")


def _folder(files: Sequence[str]) -> str:
    """The folder of a case made of several files (per-modality BraTS)."""
    return str(Path(files[0]).parent) if files else "?"


def _unreadable(files: Sequence[str], root: BaseException, detail: str) -> tuple[str, BaseException, str]:
    """``(file, exception, detail)`` of the file of a case that could not be loaded: the only one, the one the
    error names, else the first of several (per-modality) files that fails to load on its own."""
    if len(files) == 1:
        return files[0], root, detail
    named = [f for f in files if Path(f).name in str(root)]
    if len(named) == 1:
        return named[0], root, detail
    from monai.transforms import LoadImage

    for f in files:
        try:
            LoadImage(image_only=True)(f)
        except Exception as exc:
            return f, exc, _detail(exc, files)
    return _folder(files), root, detail


def _read_problem(file: str, root: BaseException, detail: str) -> str:
    """Why ``file`` could not be read: missing, empty, unreadable, truncated, or not of the format its name says."""
    path, kind = Path(file), _format_name(file)
    if path.is_dir():
        return f"{file}: its image files cannot be read together ({detail})"
    if not path.exists():
        return f"{file}: does not exist"
    if path.is_file() and path.stat().st_size == 0:
        return f"{file}: empty file (0 bytes)"
    if isinstance(root, OSError) and root.errno is not None:
        return f"{file}: cannot be read ({root.strerror or detail})"
    if isinstance(root, EOFError) or _TRUNCATED.search(detail):
        return f"{file}: truncated or damaged {kind} file ({detail})"
    return f"{file}: not {'an' if kind == 'image' else 'a'} {kind} file, or a damaged one ({detail})"


def describe(exc: BaseException, files: Sequence[str] | str) -> str:
    """One line, ``<file>: <problem>``, for an exception raised while segmenting one case read from ``files``.

    A :class:`UserInputError` keeps its own message (it names its file); a failure of MONAI's ``LoadImage`` says
    whether the file is empty, truncated or not of the format its name says; anything else names the transform
    (or the exception type) and its message.
    """
    known = user_error(exc)
    if known is not None:
        return message(known)
    files = [str(f) for f in ([files] if isinstance(files, (str, Path)) else files)]
    chain = exception_chain(exc)
    root = next((e for e in chain if not _TRANSFORM.match(str(e))), chain[-1])  # the error under MONAI's wrappers
    detail = _detail(root, files)
    transforms = [m.group(1).rsplit(".", 1)[-1] for e in chain if (m := _TRANSFORM.match(str(e)))]
    transform = next((t for t in reversed(transforms) if t != "Compose"), None)
    if transform in ("LoadImaged", "LoadImage"):
        return _read_problem(*_unreadable(files, root, detail))
    named = [f for f in files if Path(f).name in str(root)]
    file = files[0] if len(files) == 1 else named[0] if len(named) == 1 else _folder(files)
    where = f"{transform}: {detail}" if transform else f"{type(root).__name__}: {detail}"
    return f"{file}: could not be segmented ({where})"


def _files(item: Mapping, image_key: str) -> list[str]:
    """The input file(s) of a datalist item, or of a loaded (MetaTensor) image."""
    image = item.get(image_key)
    if isinstance(image, torch.Tensor):
        image = (getattr(image, "meta", None) or {}).get("filename_or_obj", "<in-memory image>")
    if isinstance(image, (list, tuple)):
        return [str(i) for i in image]
    return [str(image)] if image is not None else []


def failure_item(item: Mapping, problem: str, tb: str = "", case_key: str = "case_id") -> dict:
    """The marker that stands for a case that could not be loaded: its id, its problem, the traceback."""
    return {case_key: str(item.get(case_key, "?")), FAILURE_KEY: problem, TRACEBACK_KEY: tb}


class FailSafeDataset(torch.utils.data.Dataset):
    """Wrap a map-style dataset of datalist items (MONAI's ``Dataset``): an item that cannot be loaded or
    preprocessed becomes :func:`failure_item` (``{case_id, case_failure, case_traceback}``) instead of an exception.

    Args:
        dataset: the dataset; its ``data`` (the datalist) names the case and file of a failed item.
        case_key: the datalist key of the case id.
        image_key: the datalist key of the image file(s), named in the problem.
    """

    def __init__(self, dataset: Any, case_key: str = "case_id", image_key: str = "image") -> None:
        self.dataset, self.case_key, self.image_key = dataset, case_key, image_key

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        data = getattr(self.dataset, "data", None)
        item = data[index] if data is not None and isinstance(data[index], Mapping) else {self.case_key: str(index)}
        if item.get(INPUT_ERROR_KEY):
            return failure_item(item, str(item[INPUT_ERROR_KEY]), case_key=self.case_key)
        try:
            return self.dataset[index]
        except Exception as exc:  # one bad case must not stop the others; its problem is reported at the end
            return failure_item(item, describe(exc, _files(item, self.image_key)), traceback.format_exc(),
                                self.case_key)


def _case_ids(batch: Any, case_key: str) -> list[str]:
    ids = batch.get(case_key) if isinstance(batch, Mapping) else None
    return [str(i) for i in ids] if isinstance(ids, (list, tuple)) else [str(ids if ids is not None else "?")]


def evaluator_iteration(engine: Any, batch: Any) -> Any:
    """Run MONAI's own iteration of ``engine`` (a ``SupervisedEvaluator``) on ``batch``: what the evaluator runs
    when it is given no ``iteration_update``.

    Neither MONAI nor Ignite has a public name for it: ``Workflow.__init__`` hands ``self._iteration`` to Ignite's
    ``Engine`` unless ``iteration_update`` is given (its docstring: "if not provided, use `self._iteration()`
    instead"), and Ignite keeps whichever it got in the private ``Engine._process_function``. So this is the one
    place that calls the private ``_iteration``; checked against monai 1.6.1 and pytorch-ignite 0.5.x, and pinned by
    ``tests/test_inference_bad_input.py::test_the_private_evaluator_iteration_is_still_what_monai_runs``.
    """
    return engine._iteration(engine, batch)  # private: checked with monai 1.6.1, pytorch-ignite 0.5.x


class SkipFailedCases:
    """``iteration_update`` of an inference ``SupervisedEvaluator``: skips the marker items of
    :class:`FailSafeDataset`, records a case whose inference, postprocessing or writing fails and goes on with
    the next, and stops on an :class:`~monai_app.files.OutputError` (nothing more could be written).

    Args:
        debug: also log each failure's traceback (``--debug true`` or ``MONAI_APP_DEBUG=1``).
        case_key: the batch key of the case ids.
        image_key: the batch key of the image, whose metadata names the input file.
    """

    def __init__(self, debug: bool | str | None = False, case_key: str = "case_id", image_key: str = "image") -> None:
        self.debug = debug_requested(debug)
        self.case_key, self.image_key = case_key, image_key
        self.done: list[str] = []
        self.failures: list[str] = []  # "<case_id>: <file>: <problem>", one per failed case

    def _fail(self, case: str, problem: str, tb: str = "") -> None:
        line = f"{case}: {problem}"
        self.failures.append(line)
        logger.warning("%s (skipped)", line)
        if self.debug and tb:
            logger.error("traceback of %s:\n%s", case, tb.rstrip())

    def __call__(self, engine: Any, batch: Any) -> Any:
        cases = _case_ids(batch, self.case_key)
        if isinstance(batch, Mapping) and FAILURE_KEY in batch:
            tbs = batch.get(TRACEBACK_KEY) or [""] * len(cases)
            for case, problem, tb in zip(cases, batch[FAILURE_KEY], tbs):
                self._fail(case, problem, tb)
            return None
        files = _files(batch, self.image_key) if isinstance(batch, Mapping) else []
        try:
            output = evaluator_iteration(engine, batch)
        except Exception as exc:
            stop = next((e for e in exception_chain(exc) if isinstance(e, OutputError) or
                         isinstance(e, OSError) and e.errno in NO_SPACE), None)
            if stop is not None:  # every later case would fail the same way
                self.print_failures()
                raise OutputError(f"{message(stop)} for case {', '.join(cases)}; stopped after {len(self.done)} "
                                  "case(s) were written: rerun with --skip_existing true once this is fixed") from exc
            self._fail(", ".join(cases), describe(exc, files), traceback.format_exc())
            return None
        self.done.extend(cases)
        return output

    def print_failures(self) -> None:
        """Print each failed case on one line to stderr, whatever the logging configuration: the run's error
        output, as the error hook's final line."""
        for line in self.failures:
            print(line, file=sys.stderr)
        sys.stderr.flush()

    def report(self, output_dir: str) -> None:
        """Log what was written; with failures, print them and raise a :class:`UserInputError` (non-zero exit).

        Raises:
            UserInputError: ``<M> of <N> case(s) failed (listed above); ...``.
        """
        out = Path(output_dir).resolve()
        logger.info("segmented %d case(s); label maps in %s", len(self.done), out)
        if not self.failures:
            return
        self.print_failures()
        total = len(self.failures) + len(self.done)
        raise UserInputError(f"{len(self.failures)} of {total} case(s) failed (listed above; nothing was written for "
                             f"them); the other {len(self.done)} were written to {out}")
