"""The bundled controls carry no surface cue, and no prompt or topic appears twice.

A category's refusal direction is a difference of means between its refuse prompts and its
matched twins; a grammatical cue that only one side shows would leak into that direction.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import refusal_checks
from refusal_checks.prompts import audit as prompts_audit
from refusal_checks.prompts.sets import CategoryPrompts, PromptCollection, PromptSet
from refusal_checks.prompts.load import CATEGORIES, bundled
from refusal_checks.prompts.audit import (
    CUES,
    MAX_GAP,
    asks_certainty,
    audit,
    audit_files,
    compare,
    ends_with_question,
    format_table,
    has_second_person,
    near_duplicates,
    opens_imperative,
    violations,
    word_jaccard,
)

DATA = Path(refusal_checks.__file__).resolve().parent / "data"
PROMPT_FILES = [*CATEGORIES, "benign"]


def _rows(stem: str) -> list[dict[str, str]]:
    with (DATA / f"{stem}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --- the bundled data ------------------------------------------------------------------


def test_no_surface_cue_separates_a_category_from_its_matched_twins() -> None:
    reports = audit(bundled())
    # For reference only: against the general benign pool (the paper's design) the cues do
    # differ, e.g. in length; that is why the matched twins exist.
    print("refuse vs matched twins (refuse/matched):\n" + format_table(reports))
    print("refuse vs general benign pool, for reference:\n"
          + format_table(audit(bundled(), against_benign=True)))
    assert [r.category for r in reports] == list(CATEGORIES)
    found = violations(reports)
    assert not found, "\n".join(["a surface cue tells the two sides apart:", *found,
                                 format_table(reports)])


def test_safety_core_and_crime_assistance_share_no_topic() -> None:
    topics = {stem: {row["topic"] for row in _rows(stem)} for stem in PROMPT_FILES}
    assert not topics["safety_core"] & topics["crime_assistance"]
    shared = {(a, b): topics[a] & topics[b] for a, b in itertools.combinations(CATEGORIES, 2)}
    assert not {pair: both for pair, both in shared.items() if both}


def test_each_topic_is_one_refuse_prompt_and_its_twin() -> None:
    for stem in CATEGORIES:
        rows = _rows(stem)
        by_side = {side: [r["topic"] for r in rows if r["side"] == side]
                   for side in ("refuse", "matched")}
        assert by_side["refuse"] == by_side["matched"], stem  # same topics, same order
        assert len(set(by_side["refuse"])) == 64, stem
        subgenres = {r["topic"]: r["subgenre"] for r in rows if r["side"] == "refuse"}
        assert all(subgenres[r["topic"]] == r["subgenre"] for r in rows), stem


def test_no_two_bundled_prompts_are_near_duplicates() -> None:
    labelled = [(f"{stem}.jsonl:{line}", row["prompt"]) for stem in PROMPT_FILES
                for line, row in enumerate(_rows(stem), start=1)]
    assert len(labelled) == 11 * 128 + 128
    found = near_duplicates(labelled, threshold=0.8)
    assert not found, "\n".join(f"{a} ~ {b}: word Jaccard {s:.2f}" for a, b, s in found)


# --- the cue detectors -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("What did you have for breakfast?", True), ("Is your name Sam?", True),
    ("Tell me about yourself.", True), ("I think you're great", True),
    ("You\u2019ll see.", True), ("How young is the universe?", False),
    ("Youth football rules?", False), ("Explain the tax code.", False)])
def test_second_person(text: str, expected: bool) -> None:
    assert has_second_person(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Why?", True), ('He asked "why?"', True), ("Why? ", True), ("(really?)", True),
    ("Tell me why.", False), ("Is it? Tell me.", False)])
def test_trailing_question_mark(text: str, expected: bool) -> None:
    assert ends_with_question(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Write a poem.", True), ("Please explain photosynthesis.", True),
    ("Hey, list three rivers.", True), ("OK so draw a cat.", True),
    ("Can you write a poem?", False), ("What is a list?", False),
    ("My son needs help.", False), ("", False)])
def test_imperative_opening(text: str, expected: bool) -> None:
    assert opens_imperative(text) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("What is it, exactly?", True), ("Settle it once and for all.", True),
    ("Which is best, no debate?", True), ("Which album is best, period?", True),
    ("Is it 100% safe?", True), ("Answer with certainty.", True),
    ("A certain kind of tree grows here.", False), ("What period came after the Jurassic?", False),
    ("Roughly how long is it?", False)])
def test_certainty_words(text: str, expected: bool) -> None:
    assert asks_certainty(text) is expected


def test_long_is_judged_against_the_pooled_median() -> None:
    report = compare("c", ["one two three four", "one two three four five"], ["one", "one two"])
    assert report.median_words == 3.0  # median of 4, 5, 1, 2
    assert report.refuse["long"] == 1.0 and report.matched["long"] == 0.0
    assert report.worst == ("long", 1.0)


# --- the audit finds a planted cue, and works on user files ----------------------------


def _collection(refuse: list[str], matched: list[str]) -> PromptCollection:
    refuse_set = PromptSet("planted/refuse", "planted", "refuse", tuple(refuse), "test")
    matched_set = PromptSet("planted/matched", "planted", "matched", tuple(matched), "test")
    cat = CategoryPrompts("planted", refuse_set, matched_set)
    return PromptCollection({"planted": cat}, bundled().benign, "test")


def test_audit_flags_a_planted_second_person_cue() -> None:
    refuse = [f"What is your favourite number {i}?" for i in range(10)]
    matched = [f"What is the largest number {i}?" for i in range(8)] + [
        "Do you know the largest number?", "Can you count to ten?"]
    found = violations(audit(_collection(refuse, matched)))
    assert len(found) == 1 and found[0].startswith("planted: second_person on 100% of refuse")
    assert "vs 20% of matched" in found[0] and "gap 80% > 20%" in found[0]


def test_a_gap_of_exactly_the_limit_passes() -> None:
    refuse = ["Why?"] * 5 + ["Because."] * 5
    matched = ["Why?"] * 3 + ["Because."] * 7
    report = audit(_collection(refuse, matched))[0]
    assert report.gaps["question"] == pytest.approx(MAX_GAP)
    assert not violations([report])


def test_audit_files_reads_a_user_prompt_file(tmp_path: Path) -> None:
    rows = [{"prompt": f"Tell me all your secret number {i}.", "category": "mine", "side": "refuse"}
            for i in range(4)] + [
            {"prompt": f"What is the capital of country {i}?", "category": "mine",
             "side": "matched"} for i in range(4)]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table, found = audit_files([str(path)])
    assert table.splitlines()[1].startswith("mine ")
    assert {line.split(" on ")[0] for line in found} == {
        "mine: second_person", "mine: question", "mine: imperative"}


@given(st.lists(st.text(max_size=40), max_size=12), st.lists(st.text(max_size=40), max_size=12))
def test_rates_are_shares_and_gaps_are_symmetric(first: list[str], second: list[str]) -> None:
    one, other = compare("c", first, second), compare("c", second, first)
    for report in (one, other):
        assert all(0.0 <= rate <= 1.0 for side in (report.refuse, report.matched)
                   for rate in side.values())
        assert set(report.refuse) == set(CUES)
    assert one.gaps == other.gaps


_words = st.lists(st.sampled_from("a b c d e f g h".split()), max_size=8).map(" ".join)


@given(st.lists(_words, max_size=14), st.sampled_from([0.3, 0.5, 0.8]))
def test_near_duplicates_equal_the_all_pairs_search(texts: list[str], threshold: float) -> None:
    labelled = [(str(i), t) for i, t in enumerate(texts)]
    brute = {(a, b) for (a, x), (b, y) in itertools.combinations(labelled, 2)
             if word_jaccard(x, y) > threshold or x.split() == y.split()}
    assert {(a, b) for a, b, _ in near_duplicates(labelled, threshold)} == brute
