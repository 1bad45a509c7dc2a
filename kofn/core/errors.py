"""User-facing error types shared by every layer of kofn.

A user mistake (a bad config key, a broken data file, an ONNX model kofn cannot take, a damaged
build folder, an ``--out`` it cannot write) raises a :class:`KofnError` subclass whose message
starts with the culprit: a config key (``layers[0].k``), a file or a folder.  The command line
prints it as one line, ``kofn: <what>: <culprit>: <why>``, and exits 2.  Anything else is a bug
in kofn: a traceback, a request for a bug report, and exit 1.

Every class also derives from :class:`ValueError`, so library callers that caught
``ValueError`` before these types existed keep working.
"""

from __future__ import annotations

import typing

__all__ = ["KofnError", "ConfigError", "DataError", "ModelFileError", "BuildError", "OutputError", "UsageError",
           "fail"]


class KofnError(ValueError):
    """A user error: the CLI prints ``kofn: {what}: {message}`` and exits 2."""

    what = "error"


class ConfigError(KofnError):
    """A configuration value is unknown, missing or impossible; the message names the key."""

    what = "config"


class DataError(KofnError):
    """A dataset file or folder is missing, unreadable or inconsistent; the message names it."""

    what = "data"


class ModelFileError(KofnError):
    """A model file given to kofn (an ONNX model) cannot be read or is not one kofn builds."""

    what = "model"


class BuildError(KofnError):
    """A build folder given to ``kofn sim``, ``synth`` or ``export`` is missing, incomplete or
    inconsistent (an IR code outside its format, a row that is not k-of-n, a ROM that does not
    match the IR); the message names the file."""

    what = "build"


class OutputError(KofnError):
    """Where kofn was asked to write cannot take it (``--out`` is a file, is busy, is not writable)."""

    what = "output"


class UsageError(KofnError):
    """A command-line option's value is impossible; the message names the option."""

    what = "usage"


def fail(key: str, msg: str) -> typing.NoReturn:
    raise ConfigError(f"{key}: {msg}")
