"""Errors that the CLI turns into one clear line instead of a traceback."""

from __future__ import annotations


class SeqwatchError(Exception):
    """An error a user can act on; `str(exc)` is the whole message."""

    exit_code = 2


class KafkaUnreachable(SeqwatchError):
    """The broker did not answer in time."""


class ConfigError(SeqwatchError):
    """A setting, flag or file is invalid."""
