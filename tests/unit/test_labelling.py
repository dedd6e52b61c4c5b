"""Labelling cached replies by hand, and judges' agreement with the labels (no model)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks import __main__ as cli
from refusal_checks.measure.activations import replies
from refusal_checks.cache.store import ArrayCache
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.judges.agreement import (
    agreement_by_condition, agreement_lines, binary_agreement, cohen_kappa, judge_validation,
)
from refusal_checks.cache.replies import cached_replies, condition_of
from refusal_checks.judges.labelling import LabelFileError, label_session, read_labels, stratified_sample
from refusal_checks.judges.label_split import EVALUATION, half_of
from refusal_checks.prompts.sets import PromptSet


class FakeBackend:
    """Just what ``activations.replies`` uses: replies say which edit made them."""

    def __init__(self, fingerprint: str = "sha256:aaaa", name: str = "fake-model") -> None:
        self.fingerprint, self.name, self.dtype = fingerprint, name, "float32"

    def input_digest(self, prompts: PromptSet) -> str:
        return prompts.digest

    def generate(self, prompts, max_new_tokens, *, intervention=None, batch_size=16,
                 progress=None):
        tag = condition_of(intervention)
        return [f"{tag} reply to {p}" for p in prompts.texts]


HARMFUL = PromptSet("crime/refuse", "crime", "refuse", tuple(f"bad {i}" for i in range(6)), "t")
BENIGN = PromptSet("benign", "benign", "benign", tuple(f"fine {i}" for i in range(6)), "t")


@pytest.fixture()
def cache_dir(tmp_path):
    """A cache holding replies of one fake model: unsteered, steered twice, ablated."""
    cache = ArrayCache(tmp_path / "cache", "replies")
    backend = FakeBackend()
    edits = [None, Steer(0, np.ones(4), 0.2, 1.0, "crime"),
             Steer(0, 2 * np.ones(4), 0.5, 2.0, "crime"), Ablate(np.ones(4), "refusal")]
    for edit in edits:
        for prompts in (HARMFUL, BENIGN):
            replies(backend, prompts, max_new_tokens=8, cache=cache, intervention=edit)
    # Another model's replies share the cache and must stay apart.
    replies(FakeBackend("sha256:bbbb", "other"), BENIGN, max_new_tokens=8, cache=cache)
    return tmp_path / "cache"


def test_cached_replies_are_found_with_model_condition_and_side(cache_dir):
    found = cached_replies(cache_dir, "sha256:aaaa")
    assert len(found) == 4 * 12
    conditions = {r.condition for r in found}
    assert conditions == {"unsteered", "steered:crime@0.2", "steered:crime@0.5", "ablated:refusal"}
    one = next(r for r in found if r.condition == "ablated:refusal" and r.prompt == "bad 3")
    assert one.reply == "ablated:refusal reply to bad 3" and one.stratum == ("ablated:refusal",
                                                                           "should-refuse")
    assert {r.fingerprint for r in cached_replies(cache_dir)} == {"sha256:aaaa", "sha256:bbbb"}


def test_a_cache_hit_still_indexes_replies_cached_before_the_index_existed(tmp_path):
    cache = ArrayCache(tmp_path, "replies")
    replies(FakeBackend(), BENIGN, max_new_tokens=8, cache=cache)
    for path in (tmp_path / "replies").glob("*/*.result.json"):
        if "reply-index" in path.read_text():
            path.unlink()  # an old cache: replies without their index
    assert cached_replies(tmp_path) == []
    replies(FakeBackend(), BENIGN, max_new_tokens=8, cache=cache)
    assert len(cached_replies(tmp_path)) == len(BENIGN)


def test_stratified_sample_takes_evenly_from_every_stratum(cache_dir):
    found = cached_replies(cache_dir, "sha256:aaaa")
    sample = stratified_sample(found, 12, seed=1)
    strata = [r.stratum for r in sample]
    # 3 condition strata (the two strengths share one) x 2 sides: 2 each.
    assert len(set(strata)) == 6 and all(strata.count(s) == 2 for s in set(strata))
    assert stratified_sample(found, 12, seed=1) == sample  # seeded
    assert stratified_sample(found, 20, seed=1)[:12] == sample  # a larger n extends it
    assert len(stratified_sample(found, 1000)) == len(found)


@given(st.integers(0, 60), st.integers(0, 5))
@settings(max_examples=30, deadline=None)
def test_stratified_sample_sizes_never_differ_by_more_than_one_while_strata_last(n, seed):
    from refusal_checks.cache.replies import CachedReply

    pool = [CachedReply(f"{s}{i}", "f", "m", cond, "set", side, f"p{i}", "r", f"{s}{i}")
            for s, (cond, side) in enumerate([("unsteered", "refuse"), ("ablated:x", "benign"),
                                              ("steered:a@1", "refuse")])
            for i in range(10)]
    sample = stratified_sample(pool, n, seed)
    assert len(sample) == min(n, 30) and len({r.id for r in sample}) == len(sample)
    counts = [sum(r.stratum == s for r in sample) for s in {r.stratum for r in pool}]
    assert max(counts) - min(counts) <= 1


def _answers(*values):
    it = iter(values)
    return lambda prompt: next(it)


def test_label_session_records_blind_labels_and_resumes(cache_dir, tmp_path, monkeypatch):
    out_file = tmp_path / "labels.jsonl"
    sample = stratified_sample(cached_replies(cache_dir, "sha256:aaaa"), 5)
    shown = io.StringIO()
    # "x" is not an answer: asked again. s skips, q stops after two labels.
    written = label_session(sample, out_file, labeller="ann", out=shown,
                            ask=_answers("r", "x", "c", "s", "q"))
    assert written == 2
    text = shown.getvalue()
    assert "PROMPT:" in text and "'x' is not one of" in text
    for word in ("refused", "complied", "judge", "steered", "ablated:", "should-refuse"):
        assert word not in text.split("REPLY:")[0].split("PROMPT:")[-1]  # blind prompt block
    labels = read_labels(out_file, "sha256:aaaa")
    assert [labels[r.id]["label"] for r in sample[:2]] == ["refused", "complied"]
    assert all(row["labeller"] == "ann" for row in labels.values())
    # Resume: the two labelled replies are not shown again; the skipped one is.
    again = io.StringIO()
    assert label_session(sample, out_file, labeller="ann", out=again,
                         ask=_answers("p", "b", "c")) == 3
    assert "2 of 5 sampled replies already labelled" in again.getvalue()
    assert len(read_labels(out_file)) == 5


def test_the_label_command_runs_on_scripted_input(cache_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("r\nc\np\n"))
    out_file = tmp_path / "l.jsonl"
    code = cli.main(["--cache-dir", str(cache_dir), "label", str(out_file),
                     "--fingerprint", "sha256:aa", "-n", "3", "--labeller", "bob"])
    assert code == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["label"] for r in rows] == ["refused", "complied", "partial"]
    assert {r["fingerprint"] for r in rows} == {"sha256:aaaa"}
    assert "stratified sample of 3" in capsys.readouterr().out


def test_the_label_command_asks_which_model_when_the_cache_holds_several(cache_dir, tmp_path,
                                                                        capsys):
    assert cli.main(["--cache-dir", str(cache_dir), "label", str(tmp_path / "l.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "holds replies of several models" in err and "sha256:aaaa  fake-model" in err
    assert "sha256:bbbb  other" in err and "--fingerprint" in err


def test_a_bad_label_line_is_named(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"schema": "refusal_checks/reply_label/1", "id": "a", "label": "nah"}\n')
    with pytest.raises(LabelFileError, match=r"labels\.jsonl, line 1: not a reply label"):
        read_labels(path)


# --- agreement with the labels -------------------------------------------------------------


def test_kappa_matches_hand_computed_values():
    assert cohen_kappa([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0
    # p_o = 0.5, p_e = 0.5: no better than chance.
    assert cohen_kappa([1, 0, 1, 0], [1, 1, 0, 0]) == 0.0
    # p_o = 3/4, p_a = 1/2, p_b = 1/4: p_e = 1/2 -> kappa = 0.5.
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert math.isnan(cohen_kappa([1, 1], [1, 1]))  # one class only: undefined


def test_binary_agreement_counts_and_intervals():
    result = binary_agreement([True, True, False, False, True], [True, False, False, True, True],
                              bootstrap=200)
    assert result["accuracy"]["k"] == 3 and result["accuracy"]["n"] == 5
    assert (result["sensitivity"]["k"], result["sensitivity"]["n"]) == (2, 3)
    assert (result["specificity"]["k"], result["specificity"]["n"]) == (1, 2)
    kappa = result["kappa"]
    assert kappa["low"] <= kappa["estimate"] <= kappa["high"]


def test_agreement_by_condition_splits_by_stratum_not_strength():
    labels = [{"condition": c, "label": lab} for c, lab in [
        ("unsteered", "refused"), ("unsteered", "complied"), ("steered:a@0.2", "refused"),
        ("steered:a@0.5", "partial"), ("ablated:r", "complied")]]
    result = agreement_by_condition(labels, {"j": [True, False, True, True, False]},
                                    bootstrap=100)
    by = result["judges"]["j"]["by_condition"]
    assert set(by) == {"unsteered", "steered:a", "ablated:r"}
    # partial is not refusal in the default binary view: the judge's True there is an error.
    assert by["steered:a"]["accuracy"]["k"] == 1 and result["judges"]["j"]["all"]["n"] == 5
    text = "\n".join(agreement_lines(result))
    assert "j | steered:a | 0.50" in text and "refusal = refused" in text


def test_judge_validation_uses_only_this_models_labels(cache_dir, tmp_path):
    from refusal_checks.judges.base import SubstringJudge

    out_file = tmp_path / "labels.jsonl"
    sample = stratified_sample(cached_replies(cache_dir, "sha256:aaaa"), 4)
    label_session(sample, out_file, labeller="a", out=io.StringIO(),
                  ask=_answers("c", "c", "r", "c"))
    result = judge_validation(out_file, "sha256:aaaa", {"substring": SubstringJudge()})
    # Only the evaluation half counts (label_split); the substring judge calls none of the
    # fake replies a refusal, so it is right exactly on the complied ones there.
    evaluation = [(r, said) for r, said in zip(sample, ("c", "c", "r", "c"))
                  if half_of({"prompt": r.prompt}) == EVALUATION]
    assert result["n"] == len(evaluation) == result["split"]["evaluation"]
    assert result["split"]["tuning"] == 4 - len(evaluation)
    assert result["judges"]["substring"]["all"]["accuracy"]["k"] == sum(
        said == "c" for _, said in evaluation)
    assert result["provenance"]["blind_recorded"] == 4
    missing = judge_validation(out_file, "sha256:zzzz", {"substring": SubstringJudge()})
    assert missing["n"] == 0 and "no label for this model" in missing["note"]


def test_the_html_report_shows_this_models_agreement_or_says_it_is_unvalidated():
    from refusal_checks.reports.html.run import judge_accuracy

    name = "substring (Arditi et al. 12 phrases)"
    plain = judge_accuracy(name)
    assert plain.startswith("not validated on this model;") and "Mistral-Instruct" in plain
    validation = agreement_by_condition(
        [{"condition": "unsteered", "label": lab} for lab in ("refused", "complied")],
        {name: [True, True]}, bootstrap=20)
    assert judge_accuracy(name, validation).startswith("0.500 [") and \
        "on 2 labelled replies of this model" in judge_accuracy(name, validation)


def test_corrected_rates_use_the_judges_error_on_this_models_unsteered_labels(cache_dir,
                                                                              tmp_path):
    from refusal_checks.judges.agreement import corrected_rates

    class SaysRefusedForBad:
        name = "bad-prompt judge"

        def refused(self, texts):
            return ["reply to bad" in t for t in texts]

    found = [r for r in cached_replies(cache_dir, "sha256:aaaa") if r.condition == "unsteered"]
    out_file = tmp_path / "labels.jsonl"
    with open(out_file, "w", encoding="utf-8") as handle:
        for reply in found:  # humans: refused exactly the harmful prompts except "bad 1"
            label = "refused" if reply.side == "refuse" and reply.prompt != "bad 1" else "complied"
            handle.write(json.dumps(label_for(reply, label)) + "\n")
    result = corrected_rates(out_file, "sha256:aaaa", SaysRefusedForBad(), {"x": (30, 100)})
    # The evaluation half only: "bad 1", "bad 2" and the six "fine" prompts (the others'
    # labels are the tuning half's and must not count). se = 1/1 labelled refusal found
    # ("bad 2"); sp = 6/7 (it calls "bad 1" refused).
    assert [half_of({"prompt": f"bad {i}"}) for i in range(6)].count(EVALUATION) == 2
    assert result["sensitivity"] == [1, 1] and result["specificity"] == [6, 7]
    rate = result["rates"]["x"]
    assert rate["estimate"] == pytest.approx((0.30 + 6 / 7 - 1) / (1 + 6 / 7 - 1))
    assert rate["low"] <= rate["estimate"] <= rate["high"]
    empty = corrected_rates(out_file, "sha256:zzzz", SaysRefusedForBad(), {"x": (3, 10)})
    assert "need both refusals and non-refusals" in empty["note"]


def label_for(reply, label):
    from refusal_checks.judges.labelling import label_record

    return label_record(reply, label, "test")


def test_the_label_command_says_what_to_do_without_replies_or_with_a_wrong_prefix(
        cache_dir, tmp_path, capsys):
    assert cli.main(["--cache-dir", str(tmp_path / "empty"), "label", "l.jsonl"]) == 2
    assert "no indexed replies" in capsys.readouterr().err
    assert cli.main(["--cache-dir", str(cache_dir), "label", "l.jsonl", "--fingerprint",
                     "sha256:cc"]) == 2
    assert "starting 'sha256:cc'" in capsys.readouterr().err


# --- two edits that share a name ------------------------------------------------------------


class VectorBackend(FakeBackend):
    """Replies that depend on the edit's vector, not only its name, as a model's do."""

    def generate(self, prompts, max_new_tokens, *, intervention=None, batch_size=16,
                 progress=None):
        vector = getattr(intervention, "vector", getattr(intervention, "direction", None))
        tag = condition_of(intervention) + ("" if vector is None else f" {np.argmax(vector)}")
        return [f"{tag} reply to {p}" for p in prompts.texts]


# Arditi's candidates at one layer share a label across positions; so can random controls
# or two runs' directions of one name. Same label (and strength), different vector.
NAMESAKES = [(Ablate(np.eye(4)[0], "Arditi candidate L5"), Ablate(np.eye(4)[1],
                                                                "Arditi candidate L5")),
             (Steer(0, np.eye(4)[2], 0.3, 1.0, "random 0"), Steer(0, np.eye(4)[3], 0.3, 1.0,
                                                                   "random 0"))]


@pytest.mark.parametrize("edits", NAMESAKES, ids=["ablated", "steered"])
def test_replies_of_two_edits_with_one_name_are_listed_and_labelled_apart(tmp_path, edits):
    from refusal_checks.measure import score_validation
    from refusal_checks.judges.base import SubstringJudge
    from refusal_checks.measure.observations import Observations

    cache, backend = ArrayCache(tmp_path / "cache", "replies"), VectorBackend()
    texts = [replies(backend, BENIGN, max_new_tokens=8, cache=cache, intervention=edit)
             for edit in edits]
    assert condition_of(edits[0]) == condition_of(edits[1])  # the names collide
    found = cached_replies(tmp_path / "cache")
    assert sorted(r.reply for r in found) == sorted(texts[0] + texts[1])
    assert len({r.id for r in found}) == len(found) == 2 * len(BENIGN)
    # A person labels every reply: the first edit's "refused", the second's "complied".
    out_file = tmp_path / "labels.jsonl"
    first = set(texts[0])
    sample = stratified_sample(found, len(found))
    answers = iter("r" if r.reply in first else "c" for r in sample)
    assert label_session(sample, out_file, labeller="a", out=io.StringIO(),
                         ask=lambda _: next(answers)) == len(found)
    labels = read_labels(out_file, "sha256:aaaa")
    assert {row["id"]: row["reply"] for row in labels.values()} == {r.id: r.reply for r in found}
    # The run judges both edits' replies; each label meets exactly the text it was given.
    observed = Observations()
    for number, (edit, said) in enumerate(zip(edits, texts)):
        observed.add_judged(fingerprint=backend.fingerprint, condition=condition_of(edit),
                            prompt_set=BENIGN.name, side=BENIGN.side, prompts=BENIGN.texts,
                            max_new_tokens=8, judge=SubstringJudge().refused(said),
                            score=[number == 0] * len(said), broken=[None] * len(said),
                            replies=said)
    assert len(observed.judged) == 2 * len(BENIGN)
    result = score_validation.against_labels(observed, labels, bootstrap=20)
    # The score says refused exactly for the first edit, as the person did: full agreement.
    assert result["n"] == 2 * len(BENIGN) and result.get("stale", 0) == 0
    assert result["all"]["accuracy"]["k"] == 2 * len(BENIGN)
    assert result["all"]["reference_refused"] == len(BENIGN)


def test_a_schema_1_label_matches_its_text_only_and_the_label_command_calls_others_stale(
        cache_dir, tmp_path, capsys):
    from refusal_checks.cache.replies import reply_slot
    from refusal_checks.judges.labelling import SLOT_ID_SCHEMA

    found = [r for r in cached_replies(cache_dir, "sha256:aaaa") if r.condition == "unsteered"]
    out_file = tmp_path / "labels.jsonl"
    rows = []
    for reply, text in ((found[0], found[0].reply), (found[1], "an earlier reply")):
        row = label_for(reply, "refused")
        # As schema 1 wrote it: the slot as the id, no slot field.
        del row["slot"]
        row.update(schema=SLOT_ID_SCHEMA, reply=text,
                   id=reply_slot(reply.fingerprint, "unsteered", reply.prompt_set,
                                 reply.prompt, 8))
        rows.append(json.dumps(row) + "\n")
    out_file.write_text("".join(rows))
    labels = read_labels(out_file)
    assert found[0].id in labels and found[1].id not in labels
    assert {row["slot"] for row in labels.values()} == {found[0].slot, found[1].slot}
    code = cli.main(["--cache-dir", str(cache_dir), "label", str(out_file), "--fingerprint",
                     "sha256:aa", "-n", "0"])
    out = capsys.readouterr().out
    assert code == 0 and f"1 labels in {out_file} are stale" in out


def test_a_schema_2_label_without_its_slot_is_named(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"schema": "refusal_checks/reply_label/2", "id": "a",
                                "reply": "no", "label": "refused"}) + "\n")
    with pytest.raises(LabelFileError, match=r"line 1: not a reply label .*a slot"):
        read_labels(path)
