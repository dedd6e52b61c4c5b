"""README's Options table names every option the plugin registers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_plugin_option_has_a_row_in_readmes_options_table(
        pytester: pytest.Pytester) -> None:
    shown = pytester.runpytest("--help", "-p", "no:cacheprovider").stdout.str()
    registered = set(re.findall(r"^\s+(--refusal-[a-z-]+|--model)\b", shown, re.M))
    assert {"--model", "--refusal-judge", "--refusal-json"} <= registered
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Options"):readme.index("### Reports")]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", table, re.M))
    assert registered - documented == set()
