"""The oracle claims (refusal_checks/verdicts/oracle.py): the maths, the counts rules, planted worlds,
and the calibration path against a pytest run of claims/test_oracle.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.plugin import hooks as plugin

from refusal_checks.calibration import geometry as calibration

from refusal_checks.calibration import oracle as oracle_calibration
from refusal_checks.measure.activations import collect, paper_layer
from refusal_checks.measure.behaviour import RefusalBehaviour, observe_refusals
from refusal_checks.measure.behaviour_control import MIN_PER_SIDE, REPLY_TOKENS
from refusal_checks.measure.effects import judged
from refusal_checks.judges.base import SubstringJudge
from refusal_checks.verdicts.oracle import (agreement_parts, bootstrap_agreement,
                                            corrected_agreement)
from refusal_checks.verdicts.oracle import (MIN_ORACLE_SIDE, OVER_REFUSAL_CATEGORY, gather, judged_rows,
                                   oracle_agreement, resample_agreement)
from refusal_checks.verdicts.over_refusal import over_refusal_axis
from refusal_checks.prompts.load import bundled
from refusal_checks.stats.stability import cluster_half_weights
from refusal_checks.models.synthetic import SyntheticBackend
from refusal_checks.stats.verdict import Outcome, Verdict
from tests.unit.test_calibration import _run

REFUSES = RefusalBehaviour("planted", 40, 64, 0, 16)
FEW = settings(max_examples=10, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def planted(rng: np.random.Generator, d: int, n_h: int = 80, n_b: int = 70,
            signal: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = rng.standard_normal(d)
    r /= np.linalg.norm(r)
    return (signal * r + rng.standard_normal((n_h, d)), rng.standard_normal((n_b, d)), r)


@FEW
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 90), data=st.data())
def test_a_resample_and_its_held_out_oracle_never_share_a_prompt(seed, n, data):
    k = data.draw(st.integers(1, n - 1))
    w_in, w_out = cluster_half_weights(np.ones((2, n)), np.random.default_rng(seed), 5, first=k)
    assert not np.any((w_in > 0) & (w_out > 0))
    assert np.all((w_in > 0) | (w_out > 0))  # every prompt is on one side
    assert np.all((w_in > 0).sum(-1) == k) and np.all((w_out > 0).sum(-1) == n - k)
    np.testing.assert_allclose(w_in.sum(-1), 1.0)
    np.testing.assert_allclose(w_in[w_in > 0], 1.0 / k)  # plain draws without replacement


@FEW
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(8, 48),
       scale=st.floats(0.01, 100.0), shift=st.floats(-50.0, 50.0))
def test_agreement_ignores_a_shared_offset_scale_and_rotation(seed, d, scale, shift):
    rng = np.random.default_rng(seed)
    harmful, benign, _ = planted(rng, d)
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    offset = shift * rng.standard_normal(d)
    base = resample_agreement(harmful, benign, np.random.default_rng(1), 20, 20, 30)
    moved = resample_agreement(scale * (harmful + offset) @ rotation,
                               scale * (benign + offset) @ rotation,
                               np.random.default_rng(1), 20, 20, 30)
    np.testing.assert_allclose(moved, base, atol=1e-9)
    assert np.all(np.abs(base) <= 1.0)


def test_agreement_is_high_for_a_strong_direction_and_low_for_noise() -> None:
    rng = np.random.default_rng(0)
    harmful, benign, _ = planted(rng, 64, signal=8.0)
    assert np.mean(resample_agreement(harmful, benign, rng)) > 0.9
    noise = resample_agreement(rng.standard_normal((80, 64)), benign, rng)
    assert abs(np.mean(noise)) < 0.3
    with pytest.raises(ValueError, match="held-out oracle has two halves"):
        resample_agreement(harmful[:11], benign, rng, k_h=10)


@pytest.mark.parametrize("signal, n_h, n_b", [(3.0, 120, 90), (4.13, 255, 94), (8.0, 80, 70)])
def test_corrected_agreement_is_the_cosine_with_the_noise_free_oracle(signal, n_h, n_b):
    """Noise only (d 64, unit noise): a 32/32 resample has cosine s / sqrt(s^2 + 64 (2/32))
    with the true direction, whatever the held-out pool; the raw held-out cosine is lower,
    the overlapping one (the paper's) higher. Tolerance 0.02: the sd of the mean over 200
    resamples of one dataset is ~0.005 at these signals, plus the dataset's own noise in
    |d| (~1/sqrt(n) of the noise share)."""
    truth = signal / np.sqrt(signal ** 2 + 64 * (2 / 32))
    estimates, raw, overlap = [], [], []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        harmful, benign, _ = planted(rng, 64, n_h, n_b, signal)
        parts = agreement_parts(harmful, benign, rng)
        estimates.append(corrected_agreement(parts)[0])
        raw.append(np.nanmean(parts["cos"]))
        overlap.append(np.nanmean(parts["overlap"]))
    assert np.mean(estimates) == pytest.approx(truth, abs=0.02)
    assert np.mean(raw) < np.mean(estimates) < np.mean(overlap)


def test_the_agreement_bootstrap_sits_below_the_estimate_so_the_interval_is_recentred():
    """A replicate's resample holds repeated prompts (fewer distinct ones), so it is
    noisier and its cosine with the noise-free oracle lower: the replicates give the width,
    the estimate the location (recentred_interval), as for stable-within-category."""
    rng = np.random.default_rng(7)
    harmful, benign, _ = planted(rng, 64, 200, 90, 4.13)
    estimate = corrected_agreement(agreement_parts(harmful, benign, rng))[0]
    reps = bootstrap_agreement(harmful, benign, rng, n_boot=60)
    assert np.isfinite(reps).all() and 0.003 < np.std(reps) < 0.1
    assert np.median(reps) < estimate


def test_judged_rows_follow_the_judged_order_and_skip_unknown_prompts() -> None:
    rows, flags = judged_rows(["a", "b", "c"], [("c", True), ("x", False), ("a", False)])
    assert rows.tolist() == [2, 0] and flags.tolist() == [True, False]


def _inputs(rng, *, n_h=80, n_b=70, over=(12, 30), signal=6.0, over_axis=None, seed=0):
    harmful, benign, r = planted(rng, 32, n_h, n_b, signal)
    refused = np.ones(n_h, bool)
    benign_flags = np.zeros(n_b, bool)
    axis = r if over_axis is None else over_axis
    z = np.concatenate([np.full(over[0], 3.0), np.zeros(over[1])])
    over_acts = np.outer(z, axis) + rng.standard_normal((sum(over), 32))
    return gather({"safety_core": harmful}, {"safety_core": refused}, benign, np.arange(n_b),
                  benign_flags, over_acts, z > 0, over_source="over_refusal/matched",
                  layer=3, seed=seed, n_boot=100)


def test_gather_splits_by_the_verdicts_and_checks_their_number() -> None:
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((6, 4))
    flags = np.array([1, 0, 1, 1, 0, 0], bool)
    inputs = gather({"a": acts}, {"a": flags}, acts, [0, 1, 2], [True, False, False],
                    acts[:5], flags[:5], over_source="o", layer=1, seed=0)
    assert inputs.harmful_counts == {"a": (3, 3)} and inputs.benign_counts == (1, 2)
    np.testing.assert_array_equal(inputs.benign_answered, acts[[1, 2]])
    assert inputs.over_counts == (3, 2)
    assert "a 3/3" in inputs.counts_text() and "o 3/2" in inputs.counts_text()
    with pytest.raises(ValueError, match="6 activation rows but 5 refusal verdicts"):
        gather({"a": acts}, {"a": flags[:5]}, acts, [], [], layer=1, seed=0)


def test_too_few_prompts_make_both_claims_inconclusive_with_the_counts() -> None:
    rng = np.random.default_rng(1)
    few = _inputs(rng, n_h=MIN_ORACLE_SIDE - 1, over=(MIN_PER_SIDE - 1, 30))
    agreement = oracle_agreement(few, REFUSES)
    assert agreement.outcome is Outcome.INCONCLUSIVE
    assert f"{MIN_ORACLE_SIDE - 1} refused harmful" in agreement.reason
    axis = over_refusal_axis(few, REFUSES)
    assert axis.outcome is Outcome.INCONCLUSIVE
    assert f"refused {MIN_PER_SIDE - 1} and answered 30" in axis.reason
    none = gather({"a": few.harmful_refused}, {"a": np.ones(len(few.harmful_refused), bool)},
                  few.benign_answered, [], [], layer=1, seed=0)
    assert "no over-refusal set" in over_refusal_axis(none, REFUSES).reason


def test_small_pools_resample_half_and_say_so() -> None:
    verdict = oracle_agreement(_inputs(np.random.default_rng(2), n_h=40), REFUSES)
    assert verdict.statistic.startswith("mean cosine of 20/32 resample")
    assert "fewer than the paper's 32/32" in verdict.reason
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()
    assert verdict.details["resample_cosine_sd"] > 0


def test_a_model_that_never_refuses_supports_neither_claim() -> None:
    inputs = _inputs(np.random.default_rng(3))
    never = RefusalBehaviour("planted", 0, 64, 0, 16)
    for verdict in (oracle_agreement(inputs, never), over_refusal_axis(inputs, never)):
        assert verdict.outcome is Outcome.INCONCLUSIVE
        assert "no measurable refusal" in verdict.reason


def test_over_refusal_along_the_oracle_is_refuted_and_along_another_axis_supported() -> None:
    rng = np.random.default_rng(4)
    same = over_refusal_axis(_inputs(rng), REFUSES)
    assert same.outcome is Outcome.REFUTED and same.estimate > 0.8, same.line()
    other = rng.standard_normal(32)
    other /= np.linalg.norm(other)
    different = over_refusal_axis(_inputs(rng, over_axis=other), REFUSES)
    assert different.outcome is Outcome.SUPPORTED, different.line()
    assert "disattenuated_cosines" not in different.details  # no between-category heatmap


def test_over_refusal_anti_aligned_with_the_oracle_is_the_same_axis_refuted() -> None:
    """A signed cosine read -1 as 'below 0.5' (SUPPORTED); the axis is the same."""
    rng = np.random.default_rng(4)
    planted_axis = planted(np.random.default_rng(4), 32)[2]  # _inputs' r for this seed
    anti = over_refusal_axis(_inputs(rng, over_axis=-planted_axis), REFUSES)
    assert anti.outcome is Outcome.REFUTED, anti.line()
    assert anti.details["signed_corrected_cosine"] < -0.8 and anti.estimate > 0.8


def test_a_barely_reliable_over_refusal_direction_gets_a_bounded_interval() -> None:
    """Weak over-refusal (strength 0.6 on 8 + 8 prompts): the denominator is uncertain, a
    percentile interval of the ratio ran to hundreds; Fieller's stays in [0, 1]."""
    for seed in range(4):
        rng = np.random.default_rng(seed)
        harmful, benign, r = planted(rng, 32, 80, 70, 6.0)
        z = np.concatenate([np.full(8, 0.6), np.zeros(8)])
        over = np.outer(z, r) + rng.standard_normal((16, 32))
        inputs = gather({"a": harmful}, {"a": np.ones(80, bool)}, benign, np.arange(70),
                        np.zeros(70, bool), over, z > 0, over_source="o", layer=3, seed=seed,
                        n_boot=100)
        verdict = over_refusal_axis(inputs, REFUSES)
        lo, hi = verdict.interval
        assert np.isnan(lo) or 0.0 <= lo <= hi <= 1.0, verdict.line()


@pytest.mark.parametrize("scenario, agreement, over", [
    ("shared-axis", {Outcome.SUPPORTED}, {Outcome.REFUTED}),
    ("other-axis", {Outcome.SUPPORTED}, {Outcome.SUPPORTED}),
    ("rare-over-refusal", {Outcome.SUPPORTED}, {Outcome.INCONCLUSIVE}),
])
def test_planted_worlds_give_the_planted_answer(scenario, agreement, over) -> None:
    design = oracle_calibration.ORACLE_SCENARIOS[scenario].design.with_seed(5)
    verdicts = oracle_calibration.oracle_verdicts(design, n_boot=100)
    assert verdicts[oracle_calibration.AGREEMENT].outcome in agreement
    assert verdicts[oracle_calibration.OVER].outcome in over


def test_calibration_verdicts_equal_the_claims_verdicts(tmp_path: Path) -> None:
    """Run claims/test_oracle.py under pytest on a planted world with the bundled prompts
    (over_refusal has matched rows), then the same through the library."""
    categories, budget, n_boot = ["safety_core", "crime_assistance", "over_refusal"], 40, 60
    model = "synthetic:shared,signal=8,over_spread=3,over_cos=0"
    report = tmp_path / "report.json"
    done = _run(["-m", "pytest", "claims/test_oracle.py", plugin.MODEL, model,
                 plugin.CATEGORIES, ",".join(categories), plugin.MAX_PROMPTS, str(budget),
                 plugin.BOOTSTRAP, str(n_boot), plugin.JSON_REPORT, str(report),
                 "--refusal-cache-dir", str(tmp_path / "cache"), "-p", "no:cacheprovider",
                 "-p", "no:hypothesispytest", "-q"])
    assert report.is_file(), done.stdout + done.stderr
    recorded = {v["claim"]: Verdict.from_dict(v)
                for v in json.loads(report.read_text())["verdicts"]}

    backend = SyntheticBackend.from_spec(model.split(":", 1)[1])
    prompts = bundled().only(categories).head(budget)
    acts = collect(backend, prompts, position=-2, cache=None).at_layer(
        paper_layer(backend.n_layers))
    behaviour = observe_refusals(backend, prompts, seed=calibration.DEFAULT_SEED)
    harmful = ["safety_core", "crime_assistance"]  # behaviour_protocol.HARMFUL_CATEGORIES

    def verdicts(prompt_set):
        return judged(backend, prompt_set, SubstringJudge(), None, None,
                      max_new_tokens=REPLY_TOKENS)[0]

    over = prompts.categories[OVER_REFUSAL_CATEGORY].matched
    rows, flags = judged_rows(prompts.benign.texts, behaviour.benign_prompts)
    inputs = gather({c: acts.refuse[c] for c in harmful},
                    {c: verdicts(prompts.categories[c].refuse) for c in harmful},
                    acts.benign, rows, flags, acts.matched[OVER_REFUSAL_CATEGORY],
                    verdicts(over), over_source=over.name, layer=acts.layer,
                    seed=calibration.DEFAULT_SEED, n_boot=n_boot, judge=SubstringJudge().name)
    computed = {oracle_calibration.AGREEMENT: oracle_agreement(inputs, behaviour),
                oracle_calibration.OVER: over_refusal_axis(inputs, behaviour)}
    assert set(recorded) == set(computed)
    for claim, verdict in computed.items():
        theirs = recorded[claim]
        assert (verdict.outcome, verdict.statistic, verdict.n, verdict.reason) == \
            (theirs.outcome, theirs.statistic, theirs.n, theirs.reason), claim
        assert verdict.estimate == pytest.approx(theirs.estimate, rel=1e-12), claim
        assert verdict.interval == pytest.approx(theirs.interval, rel=1e-12), claim


def test_calibration_command_runs_the_oracle_worlds(tmp_path: Path) -> None:
    out = tmp_path / "oracle.json"
    done = _run(["calibration/run.py", "--oracle", "--worlds", "2", "--oracle-scenarios",
                 "other-axis,never-refuses", "--json", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    assert results["other-axis"][oracle_calibration.OVER]["counts"] == {"supported": 2}
    assert results["never-refuses"][oracle_calibration.AGREEMENT]["counts"] == \
        {"inconclusive": 2}
    assert "over-refusal-is-a-different-axis  effect other-axis" in done.stdout
    bad = _run(["calibration/run.py", "--oracle", "--style", "--worlds", "1"])
    assert bad.returncode == 2 and "give one of them" in bad.stderr


def test_an_oracle_of_pure_noise_says_why_its_agreement_is_undefined() -> None:
    """Harmful and benign prompts from one distribution: the held-out halves' product has
    mean ~0, negative in about half of such datasets; those say so instead of 'NaN'."""
    reasons = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        acts = rng.standard_normal((150, 32))
        inputs = gather({"a": acts[:80]}, {"a": np.ones(80, bool)}, acts[80:], np.arange(70),
                        np.zeros(70, bool), layer=3, seed=seed, n_boot=40)
        verdict = oracle_agreement(inputs, REFUSES)
        assert verdict.outcome is not Outcome.SUPPORTED, verdict.line()
        reasons.append(verdict.reason)
    assert any("no measurable oracle direction" in r for r in reasons)
