"""The Options page (docs/options.md, linked from README) has a row for every option the
plugin registers, and no row for an option it does not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The module whose pytest_addoption registers the options ("refusal_checks.plugin.hooks"
# once the plugin is a package of its own).
PLUGIN = "refusal_checks.plugin.hooks"


def test_every_plugin_option_has_a_row_in_the_options_table(
        pytester: pytest.Pytester) -> None:
    shown = pytester.runpytest("-p", "no:refusal_checks", "-p", PLUGIN, "-p",
                               "no:cacheprovider", "--help").stdout.str()
    registered = set(re.findall(r"^\s+(--refusal-[a-z-]+|--model)\b", shown, re.M))
    assert {"--model", "--refusal-judge", "--refusal-json"} <= registered
    table = (REPO / "docs" / "options.md").read_text()
    documented = set(re.findall(r"^\| `(--[a-z-]+)", table, re.M))
    assert registered - documented == set()
    assert documented - registered == set()
