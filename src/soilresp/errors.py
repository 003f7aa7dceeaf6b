"""Exceptions. Every message names the file and the offending column, key or value.

The CLI turns any :class:`SoilrespError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class SoilrespError(Exception):
    """Base class of errors that are the user's input, not a bug."""


class ConfigError(SoilrespError):
    """A run configuration is missing, malformed or has a bad key or value."""


class InputError(SoilrespError):
    """An input file is missing, unreadable or holds bad data.

    Build it with :func:`input_error` so the message is uniform.
    """

    def __init__(self, message: str, *, path=None, column=None, row=None, value=None):
        self.path, self.column, self.row, self.value = path, column, row, value
        super().__init__(message)


def input_error(path, problem: str, *, column=None, row=None, value=None) -> InputError:
    """An :class:`InputError` whose text reads ``FILE[, row R][, column 'C']: PROBLEM``."""
    where = [str(path)]
    if row is not None:
        where.append(f"row {row}")
    if column is not None:
        where.append(f"column '{column}'")
    msg = ", ".join(where) + f": {problem}"
    if value is not None:
        msg += f" (value {value!r})"
    return InputError(msg, path=path, column=column, row=row, value=value)


class StageError(SoilrespError):
    """A stage cannot run: a required upstream output is missing or incomplete."""
