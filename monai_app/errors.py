"""Exceptions for user mistakes, and how they are shown: one line naming the file and the problem, a non-zero exit.

``monai-app`` catches them in :func:`monai_app.cli.main`; a bundle run through ``python -m monai.bundle run`` gets
the same through :func:`install_error_hook`, which every bundle config calls first.
"""

from __future__ import annotations

import errno
import logging
import os
import sys


class UserInputError(ValueError):
    """Something the user gave us (a folder, a file, an option) is wrong; the message says what and where."""


class DatasetError(UserInputError):
    """A dataset folder does not have the layout or content its format requires."""


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (a NaN loss, a signal) after keeping what can be kept; the message says why."""


# A file system refusing a write or a read is the user's to fix (space, permissions), not a bug: shown as one line.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
DISK_ERRORS = (*NO_SPACE, errno.EACCES, errno.EPERM, errno.EROFS)


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from (``__cause__``, else ``__context__``), outermost first."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not e for e in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def user_error(exc: BaseException | None) -> BaseException | None:
    """The :class:`UserInputError`, :class:`TrainingStopped` or disk error (no space, no permission) behind ``exc``
    (MONAI and Ignite wrap errors raised inside configs, transforms and handlers), if any."""
    return next((e for e in exception_chain(exc) if isinstance(e, (UserInputError, TrainingStopped)) or
                 isinstance(e, OSError) and e.errno in DISK_ERRORS), None)


def message(exc: BaseException) -> str:
    """The message of ``exc`` without the worker traceback a ``DataLoader`` worker process wraps around it."""
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        what = "no space left on the device (nothing half-written was left behind)" if exc.errno in NO_SPACE \
            else str(exc.strerror).lower()
        return f"{exc.filename or 'a file'}: {what}"
    text = str(exc)
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: the original message is the last line
        last = text.rstrip().splitlines()[-1]
        text = last.split(": ", 1)[1] if last.startswith(type(exc).__name__ + ":") else last
    return text


def debug_requested(debug: bool | str | None = None) -> bool:
    """Whether full tracebacks were asked for: ``--debug true`` (a config key) or ``MONAI_APP_DEBUG=1``."""
    env = os.environ.get("MONAI_APP_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return env or str(debug).strip().lower() in ("1", "true", "yes")


def install_error_hook(debug: bool | str | None = False) -> None:
    """Make an uncaught user mistake print one line (``error: <file>: <problem>``) instead of a traceback; Python
    still exits with status 1.

    Any other exception keeps Python's traceback, as do all of them with ``debug`` or ``MONAI_APP_DEBUG=1``.
    """
    if debug_requested(debug) or getattr(sys.excepthook, "_monai_app", False):
        return
    quiet_user_errors()
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        problem = user_error(exc)
        if problem is None:
            return previous(exc_type, exc, tb)
        print(f"error: {message(problem)}", file=sys.stderr)

    hook._monai_app = True
    sys.excepthook = hook


class _QuietUserErrors(logging.Filter):
    """Drop log records that carry a user mistake's traceback (MONAI's ``StatsHandler`` logs every exception of an
    engine with ``logger.exception``): the one-line message is printed once, by the error hook or ``monai-app``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and user_error(record.exc_info[1]) is not None)


def quiet_user_errors() -> None:
    """Install :class:`_QuietUserErrors` on the root logger's handlers (where bundle and CLI logs end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _QuietUserErrors) for f in handler.filters):
            handler.addFilter(_QuietUserErrors())
