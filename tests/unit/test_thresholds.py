"""Pre-registered thresholds: the verdict modules' constants, the registry
(refusal_checks/verdicts/thresholds.py), docs/thresholds.md and CHANGELOG.md agree, and the
``judge`` fixture holds every registered claim to its threshold."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from refusal_checks.verdicts import thresholds
from refusal_checks.verdicts.thresholds import THRESHOLDS, Threshold

REPO = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"^[A-Z_]*(THRESHOLD|MARGIN)$")


def constant_problems(entries: tuple[Threshold, ...]) -> list[str]:
    """Registered values that differ from the constants that hold them."""
    problems = []
    for t in entries:
        if t.constant:
            module, name = t.constant.split(":")
            value = getattr(importlib.import_module(module), name)
            if value != t.value:
                problems.append(f"{t.claim}: {t.constant} is {value}, registered {t.value}")
    return problems


def changelog_problems(entries: tuple[Threshold, ...], changelog: str) -> list[str]:
    """Changed thresholds without their CHANGELOG line (claim, old -> new)."""
    problems = []
    for t in entries:
        if t.previous is None:
            continue
        line = rf"{re.escape(t.claim)}: {t.previous:.2f} -> {t.value:.2f}"
        if not re.search(line, changelog):
            problems.append(f"{t.claim}: no CHANGELOG.md line '{t.claim}: "
                            f"{t.previous:.2f} -> {t.value:.2f}'")
    return problems


def test_every_registered_threshold_is_the_value_its_constant_holds() -> None:
    assert constant_problems(THRESHOLDS) == []


def test_a_constant_changed_without_the_registry_is_found(monkeypatch) -> None:
    geometry = importlib.import_module("refusal_checks.verdicts.geometry")
    monkeypatch.setattr(geometry, "STABLE_THRESHOLD", 0.85)
    assert constant_problems(THRESHOLDS) == [
        "stable-within-category: refusal_checks.verdicts.geometry:STABLE_THRESHOLD is 0.85, "
        "registered 0.9"]


def test_every_claim_of_the_suite_is_registered_once() -> None:
    ids = [m for path in (REPO / "claims").glob("test_*.py")
           for m in re.findall(r'@pytest\.mark\.claim\(\s*"([a-z0-9-]+)"', path.read_text())]
    assert sorted(ids) == sorted(t.claim for t in THRESHOLDS)


def test_every_threshold_or_margin_constant_of_a_verdict_module_is_registered() -> None:
    registered = {t.constant.split(":")[1] for t in THRESHOLDS if t.constant}
    found = {node.targets[0].id
             for path in (REPO / "refusal_checks" / "verdicts").glob("*.py")
             for node in ast.parse(path.read_text()).body
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
             and NAMED.match(node.targets[0].id)}
    assert found - registered == set()


def test_every_changed_threshold_has_its_changelog_line() -> None:
    assert changelog_problems(THRESHOLDS, (REPO / "CHANGELOG.md").read_text()) == []


def test_a_change_without_a_changelog_line_is_found() -> None:
    moved = (Threshold("planted", 0.7, ">", "", "2026-12-07", "planted", previous=0.6),)
    assert changelog_problems(moved, "- threshold planted: 0.60 -> 0.70 (commit x)") == []
    assert changelog_problems(moved, "- threshold other: 0.60 -> 0.70") == [
        "planted: no CHANGELOG.md line 'planted: 0.60 -> 0.70'"]


def test_the_docs_table_is_the_registry() -> None:
    text = (REPO / "docs" / "thresholds.md").read_text()
    assert thresholds.table() in text, ("docs/thresholds.md is out of date: paste the output "
                                        "of `python -m refusal_checks thresholds`")


@pytest.mark.parametrize(("interval", "outcome"), [((0.69, 0.89), "inconclusive"),
                                                   ((0.81, 0.89), "supported"),
                                                   ((0.60, 0.75), "refuted")])
def test_the_previous_threshold_gives_its_own_outcome(interval, outcome) -> None:
    entry = thresholds.BY_CLAIM["stable-within-category"]
    assert entry.previous == 0.80
    assert entry.at_previous(interval) == outcome


def test_no_previous_threshold_and_nan_intervals_give_nothing() -> None:
    assert thresholds.BY_CLAIM["distinct-directions"].at_previous((0.2, 0.3)) is None
    nan = float("nan")
    assert thresholds.BY_CLAIM["stable-within-category"].at_previous((nan, nan)) is None


def _verdict(claim_threshold: float, interval=(0.69, 0.89)):
    from refusal_checks.stats.decisions import above

    return above("least stable category's split-half cosine", 0.81, interval, claim_threshold,
                 n=64)


def test_judge_gives_the_verdict_at_the_previous_threshold_beside_the_new_one() -> None:
    from fixtures.verdicts import registered

    verdict = registered("stable-within-category", _verdict(0.90))
    assert verdict.outcome.value == "refuted"
    assert verdict.details["at_previous_threshold"] == {
        "threshold": 0.80, "outcome": "inconclusive", "changed": "2026-11-30"}
    assert verdict.reason == _verdict(0.90).reason  # the decision's own reason, unchanged


def test_the_summary_prints_the_verdict_at_the_previous_threshold() -> None:
    from fixtures.verdicts import registered
    from refusal_checks.reports.summary import render_table

    record = {**registered("stable-within-category", _verdict(0.90)).to_dict(),
              "claim": "stable-within-category", "model": "m"}
    text = " ".join(render_table([record], width=200).split())
    assert ("threshold changed: stable-within-category [m]: at the previous threshold 0.80 "
            "(changed 2026-11-30, CHANGELOG.md) it reads INCONCLUSIVE") in text



def test_judge_refuses_a_verdict_against_another_threshold_than_the_registered_one() -> None:
    from fixtures.verdicts import registered

    with pytest.raises(pytest.fail.Exception, match="pre-registered threshold is > 0.9"):
        registered("stable-within-category", _verdict(0.80))


def test_a_claim_of_your_own_passes_through_unchanged() -> None:
    from fixtures.verdicts import registered

    verdict = _verdict(0.5)
    assert registered("my-own-claim", verdict) is verdict
