"""User-facing error types shared by every layer of kofn."""

from __future__ import annotations

import typing

__all__ = ["ConfigError", "fail"]


class ConfigError(ValueError):
    """A configuration value is unknown, missing or impossible; the message names the key."""


def fail(key: str, msg: str) -> typing.NoReturn:
    raise ConfigError(f"{key}: {msg}")
