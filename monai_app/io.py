"""Writing files so that a crash or a full disk never leaves a half-written output behind."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on failure removed.

    The temporary name keeps the final suffixes (``.nii.gz``, ``.png``), so writers that choose the format
    from the name still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs should be readable like any other file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
