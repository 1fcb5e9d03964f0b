"""Writing files so that a crash or a full disk never leaves a half-written output behind, and clear errors when an
output cannot be written at all (a full disk, a folder that is not writable)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from monai_app.errors import NO_SPACE, UserInputError


class OutputError(UserInputError):
    """An output cannot be written at all (the disk is full, the folder is not writable): every later write would
    fail the same way, so a run stops on it instead of going on case by case."""


def _folder_error(folder: Path, exc: OSError, what: str = "output folder") -> OutputError:
    """The :class:`OutputError` for failing to create ``folder`` or a file in it."""
    if exc.errno in NO_SPACE:
        return OutputError(f"{folder}: no space left on device; nothing was written")
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    reason = f"{blocker} is a file, not a folder" if blocker is not None else exc.strerror or str(exc)
    return OutputError(f"{folder}: {what} is not writable ({reason})")


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> str:
    """Create the folder ``path`` if needed and make sure a file can be created in it, before any work is done.

    Raises:
        OutputError: ``<path>: output folder is not writable (<why>)``, or no space is left to create a file.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise _folder_error(folder, exc, what) from exc
    return str(path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on failure removed.

    The temporary name keeps the final suffixes (``.nii.gz``, ``.png``), so writers that choose the format
    from the name still work.

    Raises:
        OutputError: the folder cannot be created or written, or the disk is full (``<path>: no space left on
            device; nothing was written``); no temporary file is left behind.
    """
    path = Path(path)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    except OSError as exc:
        raise _folder_error(path.parent, exc) from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should be readable like any other file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise OutputError(f"{path}: no space left on device; nothing was written") from exc
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def unfinished_cases(cases: list[dict], output_dir: str | os.PathLike, extension: str) -> list[dict]:
    """The cases whose output ``<output_dir>/<case_id><extension>`` does not exist yet (to resume a folder)."""
    import logging

    todo = [c for c in cases if not (Path(output_dir) / f"{c['case_id']}{extension}").is_file()]
    logging.getLogger(__name__).info("skipping %d case(s) already in %s", len(cases) - len(todo), output_dir)
    return todo
