"""Registers the claim fixtures (fixtures/, every module listed in its __init__.py)."""

pytest_plugins = ["fixtures"]
