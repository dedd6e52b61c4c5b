"""Errors a user can act on. Stdlib only, so the plugin can import them for free."""

from __future__ import annotations


class RefusalChecksError(Exception):
    """Base class: the message says what was wrong, the value, and the fix."""


class BackendError(RefusalChecksError, RuntimeError):
    """A model cannot be used as asked."""


class UnknownModelError(RefusalChecksError, ValueError):
    """A --model value that names nothing; the message lists what is known."""
