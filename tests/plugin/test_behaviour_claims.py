"""The behavioural claims on planted worlds: verdicts the plant dictates.

Runs claims/test_single_direction.py and claims/test_category_steering.py through pytest
(subprocess) on synthetic worlds, and reads the verdicts from the JSON report.
"""

from __future__ import annotations

import json

import pytest

from tests.plugin.test_plugin import copy_suite

BEHAVIOUR_FILES = ("test_single_direction.py", "test_category_steering.py")


def _verdicts(pytester: pytest.Pytester, model: str,
              claim_files: tuple[str, ...] = BEHAVIOUR_FILES) -> dict[str, dict]:
    copy_suite(pytester.path, per_category=48, claim_files=claim_files)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--model", model,
        "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
        str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-bootstrap",
        "100")
    assert "Traceback" not in result.stdout.str()
    return {v["claim"]: v for v in json.loads(report.read_text())["verdicts"]}


def test_a_model_that_never_refuses_gets_no_supported_behavioural_verdict(pytester):
    verdicts = _verdicts(pytester, "synthetic:null")
    assert len(verdicts) == 9
    for claim, verdict in verdicts.items():
        assert verdict["outcome"] == "inconclusive", (claim, verdict["line"])
        assert "no measurable refusal" in verdict["reason"] or verdict["n"] < 8, verdict["line"]


def test_a_shared_direction_world_is_one_knob_and_random_directions_do_nothing(pytester):
    verdicts = _verdicts(pytester, "synthetic:shared")
    assert verdicts["shared-knob"]["outcome"] == "supported", verdicts["shared-knob"]["line"]
    # Genre offsets ride along in every candidate of Arditi et al.'s search, so each one's
    # ablation moves the benign pool (KL > 0.1): nothing is selected, and the random
    # controls have no direction to copy (tests/plugin/test_selection_claims.py: genre 0).
    for control in ("random-direction-does-not-induce", "random-direction-does-not-bypass"):
        assert verdicts[control]["outcome"] == "inconclusive", verdicts[control]["line"]
        assert "no direction was selected" in verdicts[control]["reason"]
    # Every behavioural verdict records the judge it used or the cheap score's agreement.
    details = verdicts["shared-knob"]["details"]
    assert "score_agreement" in details and len(details["rr"]) == 3
    # The prompts behind each RR / ORR, for interval bands in the report.
    assert isinstance(details["n_harmful"], int) and details["n_harmful"] > 0
    assert isinstance(details["n_benign"], int) and details["n_benign"] > 0


def test_robustness_rechecks_each_geometry_verdict_and_reports_it(pytester):
    copy_suite(pytester.path, per_category=48)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--model",
        "synthetic:distinct", "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
        str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-bootstrap",
        "100", "--refusal-robustness", "3")
    verdicts = json.loads(report.read_text())["verdicts"]
    assert len(verdicts) == 6
    # The behaviour control is not re-checked on subsamples (README, known limits), nor
    # distinct-directions, which reads it (its paper's design is re-checked).
    rechecked = [v for v in verdicts if v["claim"] not in (
        "distinct-under-behaviour-control", "distinct-directions")]
    assert len(rechecked) == 4
    for verdict in rechecked:
        robust = verdict["robustness"]
        assert robust["checks"] == 3 and sum(robust["outcomes"].values()) == 3
        assert robust["same"] == robust["outcomes"].get(verdict["outcome"], 0)
        assert robust["fragile"] == (robust["same"] / 3 < 0.8)
    result.stdout.fnmatch_lines(["*(robust 3/3)*"])


def test_robustness_rejects_a_negative_count(pytester):
    copy_suite(pytester.path, per_category=8)
    result = pytester.runpytest_subprocess("claims", "--refusal-robustness", "-2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--refusal-robustness*expected a whole number*"])


SELECTIVE = "ablation-is-category-selective"
SELECTIVE_PAPER = "ablation-is-category-selective-paper-design"


def test_one_direction_without_genre_offsets_makes_ablation_not_selective(pytester):
    # One direction, no genre: ablating any category's direction removes every category's
    # refusal, whichever directions are ablated.
    verdicts = _verdicts(pytester, "synthetic:shared,genre=0")
    selective, paper = verdicts[SELECTIVE], verdicts[SELECTIVE_PAPER]
    assert selective["outcome"] == "refuted", selective["line"]
    assert selective["details"]["genre_matched"]["reading"].startswith("shared")
    assert paper["outcome"] == "refuted", paper["line"]
    assert paper["details"]["reading"].startswith("shared"), paper["details"]
    assert "genre" in paper["details"]["caveat"]


def test_one_direction_behind_genres_is_not_selective_though_the_paper_design_is(pytester):
    # The paper's confound, planted (synthetic:shared: one direction, genre offsets 4): each
    # general-pool direction carries its category's genre and hits its own prompts harder,
    # so the paper's design reads selective; genre-matched directions read one pathway, and
    # they decide the claim.
    verdicts = _verdicts(pytester, "synthetic:shared")
    selective, paper = verdicts[SELECTIVE], verdicts[SELECTIVE_PAPER]
    assert paper["outcome"] == "supported", paper["line"]
    assert "selectivity here may come from genre" in paper["reason"]
    assert selective["outcome"] == "refuted", selective["line"]
    assert selective["details"]["decided_by"] == "genre-matched directions"
    assert selective["details"]["genre_matched"]["directions"].startswith("genre-matched")
    assert selective["details"]["designs"][SELECTIVE_PAPER]["outcome"] == "supported"
    assert selective["reason"].startswith("with genre cancelled, genre-matched directions reads "
                                          "REFUTED")


def test_orthogonal_category_directions_make_ablation_category_selective(pytester):
    verdicts = _verdicts(pytester, "synthetic:orthogonal")
    selective, paper = verdicts[SELECTIVE], verdicts[SELECTIVE_PAPER]
    assert selective["outcome"] == "supported", selective["line"]
    assert paper["outcome"] == "supported", paper["line"]
    k = len(paper["details"]["categories"])
    assert k >= 2 and len(paper["details"]["ablated_rates"]) == k
    assert len(paper["details"]["random_drops"]) == 3
    assert selective["details"]["genre_matched"]["categories"] == paper["details"]["categories"]


def _core_verdicts(pytester: pytest.Pytester, model: str) -> dict[str, dict]:
    return _verdicts(pytester, model, ("test_shared_core.py",))


# No core: with a few categories a one-factor loading is barely identified
# (a_i^2 = C_ij C_ik / C_jk with every C near 0), so each category's own interval (the
# intersection-union test, issue #26) is wide and the claim may stay INCONCLUSIVE; it must
# never be SUPPORTED.
@pytest.mark.parametrize(("model", "core", "specific"), [
    ("synthetic:shared", {"supported"}, "refuted"),  # one direction: core, parts are noise
    ("synthetic:orthogonal", {"refuted", "inconclusive"}, "supported"),  # no core
])
def test_shared_core_claims_read_the_planted_world(pytester, model, core, specific):
    verdicts = _core_verdicts(pytester, model)
    assert verdicts["shared-refusal-core"]["outcome"] in core, \
        verdicts["shared-refusal-core"]["line"]
    assert verdicts["category-specific-parts-stable"]["outcome"] == specific, \
        verdicts["category-specific-parts-stable"]["line"]
    assert set(verdicts["shared-refusal-core"]["details"]["core_loadings"]) == \
        set(verdicts["shared-refusal-core"]["details"]["categories"])


# A shared world without genre offsets: there Arditi's selection finds a direction (with the
# genre offsets of synthetic:shared no candidate passes its filters), so the single-direction
# claims judge steered and ablated replies and every condition below is measured.
DAMAGE_WORLD = "synthetic:shared,genre=0"


def test_the_report_has_the_score_per_condition_and_the_damage_axis(pytester):
    copy_suite(pytester.path, per_category=48, claim_files=BEHAVIOUR_FILES)
    report, page = pytester.path / "report.json", pytester.path / "report.html"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--model",
        DAMAGE_WORLD, "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
        str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-bootstrap",
        "100", "--refusal-html", str(page))
    assert "Traceback" not in result.stdout.str()
    payload = json.loads(report.read_text())
    model = payload["models"][DAMAGE_WORLD]
    # The cheap score against the judge on the same replies, per condition stratum. In a
    # planted world both read the same decision score, so they agree on every reply.
    validation = model["score_validation"]
    strata = validation["by_condition"]
    assert {"unsteered", "steered:refusal", "steered:random 0", "ablated:refusal"} <= set(strata)
    for cell in strata.values():
        assert cell["n"] > 0 and cell["accuracy"]["estimate"] == 1.0
        assert 0.0 <= cell["accuracy"]["low"] <= 1.0
    assert validation["all"]["n"] == validation["n"] == sum(c["n"] for c in strata.values())
    # The damage axis: every sweep setting with its benign KL, growing with the strength;
    # judged conditions with their broken share (a planted world never breaks a reply).
    damage = model["damage"]
    conditions = damage["conditions"]
    for category in ("alpha", "beta", "gamma"):
        names = damage["steering"][category]
        assert [conditions[c]["strength"] for c in names] == [0.1, 0.2, 0.35, 0.5]
        kl = [conditions[c]["kl_benign"]["mean"] for c in names]
        assert all(k >= 0 for k in kl) and kl[-1] > kl[0]
        assert all(conditions[c]["kl_benign"]["n"] == 32 for c in names)
        assert all(conditions[c]["score"]["benign"]["n"] == 32 for c in names)
    for name in ("unsteered", "ablated:refusal"):
        assert conditions[name]["broken"]["k"] == 0 and conditions[name]["broken"]["n"] > 0
    steered = [c for c in conditions if c.startswith("steered:refusal@")]
    assert len(steered) == 1 and conditions[steered[0]]["kl_benign"]["mean"] > 0
    # ablation-keeps-harmless-behaviour's KL values are the ablated:refusal entry.
    kl_claim = next(v for v in payload["verdicts"]
                    if v["claim"] == "ablation-keeps-harmless-behaviour")
    assert conditions["ablated:refusal"]["kl_benign"]["mean"] == \
        pytest.approx(kl_claim["estimate"])
    assert damage["ablation"][0].startswith("ablated:")
    # shared-knob checked the score on the steered replies the run judged, and says which.
    knob = next(v for v in payload["verdicts"] if v["claim"] == "shared-knob")
    used = knob["details"]["score_agreement_used"]["steered"]
    assert used and "steered:refusal" in used[0]["conditions"] and used[0]["holds"]
    assert set(used[0]["directions"]) == {"alpha", "beta", "gamma"}
    result.stdout.fnmatch_lines([f"*cheap score vs judge [[]{DAMAGE_WORLD}[]]: unsteered 1.00*",
                                 f"*damage [[]{DAMAGE_WORLD}[]]: no broken reply in *"])
    html = page.read_text()
    assert 'id="damage"' in html
    assert f'alt="damage vs steering strength, {DAMAGE_WORLD}"' in html
    assert "score-validation" in html


def test_shared_knob_checks_the_score_on_each_directions_own_steered_replies(
        pytester: pytest.Pytester) -> None:
    """With the style claims selected, their replies steered along every category direction
    are judged before the sweep, so shared-knob checks the cheap score on each direction's
    own replies, not only on the unsteered ones (it ran first and saw none before)."""
    copy_suite(pytester.path, per_category=48,
               claim_files=("test_category_steering.py", "test_style.py"))
    report = pytester.path / "report.json"
    pytester.runpytest_subprocess(
        "claims", "-k", "same_refusal_knob or rate_is_matched", "-p", "no:hypothesispytest",
        "-p", "no:cacheprovider", "--model", "synthetic:distinct", "--refusal-prompts",
        "prompts.jsonl", "--refusal-cache-dir", str(pytester.path / "cache"),
        "--refusal-json", str(report), "--refusal-bootstrap", "100")
    verdicts = {v["claim"]: v for v in json.loads(report.read_text())["verdicts"]}
    assert set(verdicts) == {"shared-knob", "style-rate-matched"}
    used = verdicts["shared-knob"]["details"]["score_agreement_used"]
    assert used["basis"] == "unsteered and each direction's own steered replies", used
    assert {tuple(g["conditions"]) for g in used["steered"]} == {
        (f"steered:{c}",) for c in ("alpha", "beta", "gamma")}
    assert all(not g["proxy"] and g["n"] >= used["min_n"] for g in used["steered"])
