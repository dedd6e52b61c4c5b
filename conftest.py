"""Registers the claim fixtures: the modules fixtures/__init__.py lists.

Not ``pytest_plugins = ["fixtures"]``: pytest reads that name as its own builtin plugin
``_pytest.fixtures``.
"""

from fixtures import pytest_plugins  # noqa: F401  (pytest reads the name)
