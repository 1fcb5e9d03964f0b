"""Exceptions for user mistakes: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class UserInputError(ValueError):
    """Something the user gave us (a folder, a file, an option) is wrong; the message says what and where."""


class DatasetError(UserInputError):
    """A dataset folder does not have the layout or content its format requires."""
