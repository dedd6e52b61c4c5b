"""Registers the claim fixtures (fixtures/) for every suite in this repository."""

pytest_plugins = [
    "fixtures.models",
    "fixtures.prompts",
    "fixtures.activations",
    "fixtures.directions",
    "fixtures.verdicts",
    "fixtures.behaviour",
    "fixtures.selection",
    "fixtures.style",
    "fixtures.oracle",
    "fixtures.sae",
]
