"""Calibration of the geometry claims on known-answer worlds.

For each claim we plant worlds where it is false (the null) and where it is true (the
effect), at the sample sizes the claims really use (11 categories, 64 refused + 64
matched prompts each, 128 benign), judge each world exactly as the claim would
(:mod:`refusal_checks.calibration.geometry`), and count outcomes. Goals (issue "Known-answer
worlds"): SUPPORTED under the null at most 5% of worlds, under the effect at least 90%.

``calibration/run.py`` is the command line; this module holds the definitions so tests can
run a quick subset.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from refusal_checks.calibration.geometry import (CLAIM_IDS, CLAIMS, DEFAULT_BOOTSTRAP, MATCHED,
                                                 claim_verdicts)
from refusal_checks.calibration.tally import Tally, goal_text, pct, tally_worlds
from refusal_checks.models.synthetic import World
from refusal_checks.stats.verdict import Outcome
from refusal_checks.calibration.worlds import Design, evidence, refusals

# More-than-one-direction's boundary: 11 unit directions with pairwise cosine c have a
# participation ratio 121 / ((1 + 10c)^2 + 10 (1 - c)^2), which is 1.5 at c = 0.7958.
PR_BOUNDARY_COS = math.sqrt((121 / 1.5 - 11) / 110)

# Extra prompt noise that brings one category's mean split-half cosine (general pool,
# signal and genre 4, noise 1, d 64, 32 + 64 prompts per half) to the stable-within-category
# threshold 0.90: measured 0.908 at 1.0, 0.901 at 1.1, 0.897 at 1.15 (8 worlds each), so
# 1.12 puts the hardest null on the threshold itself.
UNSTABLE_EXTRA_NOISE = 1.12
# Just below it: 0.901 and 0.893 in two worlds (seeds 1, 2) at 1.2, the others ~0.94; the
# smallest estimate averaged 0.892 over the 200 calibration worlds.
BELOW_STABLE_EXTRA_NOISE = 1.2


# A large shared mean and a few high-variance axes, as real residual streams have; the
# noise correction assumes noise spread over many dimensions, so these worlds test that.
ANISOTROPIC = {"common": 30.0, "rogue_axes": 3, "rogue_noise": 5.0}


@dataclass(frozen=True)
class Scenario:
    """A family of planted worlds and which claims are false / true in it.

    Attributes:
        name: Short id used on the command line and in tables.
        truth: What is planted, in words.
        design: The world and prompt budget; each replicate gets its own ``world.seed``.
        null_for: Claims that are false here (SUPPORTED would be an error).
        effect_for: Claims that are true here (SUPPORTED is the goal).
        confound_for: Claims whose statistic measures something that is true here although
            the refusal claim is not (the general pool's genre confound); shown, no goal.
        confound_note: Why a confound row has no goal (the table's goal column).
        margin_for: Claims planted exactly at their threshold in every category (issue #26:
            REFUTED would be an error, at most 5%; SUPPORTED is shown).
    """

    name: str
    truth: str
    design: Design
    null_for: tuple[str, ...] = ()
    effect_for: tuple[str, ...] = ()
    confound_for: tuple[str, ...] = ()
    confound_note: str = "paper's design"
    margin_for: tuple[str, ...] = ()

    def role(self, claim: str) -> str | None:
        for role, claims in (("null", self.null_for), ("effect", self.effect_for),
                             ("confound", self.confound_for), ("margin", self.margin_for)):
            if claim in claims:
                return role
        return None


def _design(extra: dict[str, float] | None = None, **world: float) -> Design:
    return Design(World(**world), **(extra or {}))  # type: ignore[arg-type]


# Behaviour-control worlds: each should-refuse prompt has its own refusal strength (std
# ``spread`` along its category's direction), so some prompts are refused and some answered
# (signal 2: about half of them; signal 4: about 73%, 17 answered per category, the
# fewest 7-13, so some categories fall under the minimum of 8 and are left out). Genre
# offsets (4) are shared by a category's refused and answered prompts.
BEHAVIOUR_CLAIM = "distinct-under-behaviour-control"
MATCHED_CLAIM = "distinct-under-matched-control"
# distinct-directions is decided by its genre controls (refusal_checks/verdicts/genre.py);
# the paper's general-pool statistic is its own claim, a confound wherever genre is planted.
DISTINCT = "distinct-directions"
PAPER = "distinct-directions-paper-design"
GEOMETRY_CLAIMS = tuple(c for c in CLAIM_IDS if c != BEHAVIOUR_CLAIM)
BEHAVIOUR_WORLD = {"signal": 2.0, "spread": 3.0}
# Twins that differ from their own category along an axis of its own, as far as the genre
# offsets differ between categories: the matched control's blind spot (worlds.Design).
TWIN_OFFSET = 4.0

_SHARED_NULLS = (MATCHED_CLAIM, "more-than-one-direction")
# The shared-core claims (refusal_checks/verdicts/shared_core.py, PAPER.md A.7).
CORE = "shared-refusal-core"
SPECIFIC = "category-specific-parts-stable"
# Planted directions sqrt(c) core + sqrt(1 - c) own_i load sqrt(c) on the core: 0.25 puts
# every loading exactly on CORE_THRESHOLD 0.5.
BOUNDARY_CORE_COS = 0.25
# A remainder after the pooled direction keeps (1 - c)(1 - 1/k) of a direction's squared
# norm; at signal 4 (d 64, 32 + 32 matched prompts a half: half noise 64 / 16 = 4, 3.94
# off the pooled axis) 16 (1 - c) 10/11 = 3.94 at c = 0.729, where signal equals noise
# and the remainders' split-half cosine is SPECIFIC_THRESHOLD 0.5.
BOUNDARY_SPECIFIC_COS = 0.729
# Just below the thresholds, one category, the rest clearly above (issue #26's false
# SUPPORTED worlds): a planted core loading of 0.48 beside ten of sqrt(0.55) = 0.74; and at
# core-and-parts (signal 6, remainders ~0.8) extra noise that brings the first category's
# remainders' split-half below 0.5: 0.53 / 0.49 at 1.6 and 0.46 / 0.42 at 1.9 (seeds 1-2);
# at 2.0 its estimate averaged 0.472 (sd 0.052) over the 200 calibration worlds.
BELOW_CORE_LOADING = 0.48
BELOW_SPECIFIC_EXTRA_NOISE = 2.0
SCENARIOS: dict[str, Scenario] = {s.name: s for s in [
    Scenario("real-like", "cos 0.55 (paper's mean), signal 4, genre 4: split-half ~0.94",
             _design(cos=0.55), effect_for=GEOMETRY_CLAIMS),
    Scenario("shared", "one refusal direction (cos 1), genre offsets 4",
             _design(cos=1.0), null_for=_SHARED_NULLS + (SPECIFIC, DISTINCT),
             effect_for=(CORE,), confound_for=(PAPER,)),
    Scenario("shared-no-genre", "one refusal direction (cos 1), no genre offsets",
             _design(cos=1.0, genre=0.0), null_for=(DISTINCT, PAPER) + _SHARED_NULLS),
    Scenario("core-and-parts", "cos 0.55, signal 6, genre 4: core loading 0.74, remainders' "
             "split-half ~0.8 (matched split-half of whole directions 0.9, paper 0.96-0.99)",
             _design(cos=0.55, signal=6.0), effect_for=(CORE, SPECIFIC)),
    Scenario("no-core", "cos 0 between categories (no common component), genre 4",
             _design(cos=0.0), null_for=(CORE,), effect_for=(SPECIFIC,)),
    Scenario("boundary-core", f"cos {BOUNDARY_CORE_COS}: every core loading exactly 0.5",
             _design(cos=BOUNDARY_CORE_COS), margin_for=(CORE,)),
    Scenario("core-just-below", f"real-like (loadings 0.74), the first category's loading "
             f"{BELOW_CORE_LOADING}", Design(World(cos=0.55), first_core=BELOW_CORE_LOADING),
             null_for=(CORE,)),
    Scenario("boundary-specific", f"cos {BOUNDARY_SPECIFIC_COS}, signal 4: remainders' "
             "signal = half-sample noise, split-half 0.5", _design(cos=BOUNDARY_SPECIFIC_COS),
             margin_for=(SPECIFIC,), effect_for=(CORE,)),
    Scenario("specific-just-below", f"core-and-parts, one category with extra noise "
             f"{BELOW_SPECIFIC_EXTRA_NOISE}: its remainders' split-half ~0.47",
             Design(World(cos=0.55, signal=6.0), unstable=1,
                    extra_noise=BELOW_SPECIFIC_EXTRA_NOISE), null_for=(SPECIFIC,)),
    Scenario("unstable-category", f"real-like, one category with extra noise "
             f"{UNSTABLE_EXTRA_NOISE}: its split-half ~0.90, at the threshold",
             Design(World(cos=0.55), unstable=1, extra_noise=UNSTABLE_EXTRA_NOISE),
             null_for=("stable-within-category",)),
    Scenario("stable-at-threshold", f"real-like, every category with extra noise "
             f"{UNSTABLE_EXTRA_NOISE}: every split-half ~0.90, at the threshold",
             Design(World(cos=0.55), unstable=11, extra_noise=UNSTABLE_EXTRA_NOISE),
             margin_for=("stable-within-category",)),
    Scenario("unstable-just-below", f"real-like, one category with extra noise "
             f"{BELOW_STABLE_EXTRA_NOISE}: its split-half ~0.89, the others ~0.94",
             Design(World(cos=0.55), unstable=1, extra_noise=BELOW_STABLE_EXTRA_NOISE),
             null_for=("stable-within-category",)),
    Scenario("never-refuses", "signal 0 (the model never refuses), cos 1, genre 4",
             _design(cos=1.0, signal=0.0), null_for=CLAIM_IDS),
    Scenario("boundary-distinct", "cos 0.90 (at the distinct threshold), no genre",
             _design(cos=0.9, genre=0.0), null_for=(DISTINCT, PAPER)),
    Scenario("boundary-matched", "cos 0.90 (at the distinct threshold), genre 4",
             _design(cos=0.9), null_for=(MATCHED_CLAIM, DISTINCT), confound_for=(PAPER,)),
    Scenario("boundary-dimensions", f"cos {PR_BOUNDARY_COS:.4f}: participation ratio 1.5, "
             "genre 4", _design(cos=PR_BOUNDARY_COS), null_for=("more-than-one-direction",)),
    Scenario("aniso-real-like", "real-like + shared mean 30 + 3 axes of noise std 5",
             _design(ANISOTROPIC, cos=0.55), effect_for=GEOMETRY_CLAIMS),
    Scenario("aniso-shared", "shared + shared mean 30 + 3 axes of noise std 5",
             _design(ANISOTROPIC, cos=1.0), null_for=_SHARED_NULLS + (SPECIFIC, DISTINCT),
             confound_for=(PAPER,)),
    Scenario("aniso-boundary-dims", "boundary-dimensions + shared mean 30 + 3 axes std 5",
             _design(ANISOTROPIC, cos=PR_BOUNDARY_COS), null_for=("more-than-one-direction",)),
    Scenario("behaviour-shared", "one refusal direction, genre 4, per-prompt refusal "
             "strength std 3, signal 2: ~50% refused", _design(cos=1.0, **BEHAVIOUR_WORLD),
             null_for=(BEHAVIOUR_CLAIM, DISTINCT) + _SHARED_NULLS, confound_for=(PAPER,)),
    Scenario("behaviour-skewed", "behaviour-shared at signal 4: ~73% refused, ~17 answered "
             "per category (fewest 7-13)", _design(cos=1.0, signal=4.0, spread=3.0),
             null_for=(BEHAVIOUR_CLAIM, DISTINCT), confound_for=(PAPER,)),
    Scenario("behaviour-aniso-shared", "behaviour-shared + shared mean 30 + 3 axes std 5",
             _design(ANISOTROPIC, cos=1.0, **BEHAVIOUR_WORLD),
             null_for=(BEHAVIOUR_CLAIM, DISTINCT), confound_for=(PAPER,)),
    Scenario("behaviour-boundary", "behaviour-shared with cos 0.90 (the distinct threshold)",
             _design(cos=0.9, **BEHAVIOUR_WORLD), null_for=(BEHAVIOUR_CLAIM, DISTINCT),
             confound_for=(PAPER,)),
    Scenario("behaviour-distinct", "cos 0.55, genre 4, per-prompt strength std 3, signal 2",
             _design(cos=0.55, **BEHAVIOUR_WORLD), effect_for=(BEHAVIOUR_CLAIM, DISTINCT, PAPER)),
    Scenario("behaviour-weak", "behaviour-distinct with strength std 2 (smaller refused - "
             "answered gap)", _design(cos=0.55, signal=2.0, spread=2.0),
             effect_for=(BEHAVIOUR_CLAIM, DISTINCT, PAPER)),
    # Without twins (most users' files) only the behaviour control can decide.
    Scenario("behaviour-shared-no-twins", "behaviour-shared without matched rows",
             Design(World(cos=1.0, **BEHAVIOUR_WORLD), n_matched=0),
             null_for=(BEHAVIOUR_CLAIM, DISTINCT), confound_for=(PAPER,)),
    Scenario("behaviour-boundary-no-twins", "behaviour-boundary without matched rows",
             Design(World(cos=0.9, **BEHAVIOUR_WORLD), n_matched=0),
             null_for=(BEHAVIOUR_CLAIM, DISTINCT), confound_for=(PAPER,)),
    Scenario("behaviour-distinct-no-twins", "behaviour-distinct without matched rows",
             Design(World(cos=0.55, **BEHAVIOUR_WORLD), n_matched=0),
             effect_for=(BEHAVIOUR_CLAIM, DISTINCT, PAPER)),
    # The matched control's blind spot (refusal_checks/verdicts/genre.py): twins off their
    # category. The paper's design, whose benign side is the same for all, must hold it back.
    Scenario("twin-mismatch", f"one refusal direction, no genre, twins {TWIN_OFFSET:g} off "
             "their category along an axis of its own", Design(
                 World(cos=1.0, genre=0.0), twin_offset=TWIN_OFFSET),
             null_for=(DISTINCT, PAPER), confound_for=(MATCHED_CLAIM,),
             confound_note="the matched control's blind spot"),
    # Both blind spots at once: genre between categories AND twins off their category. Only
    # the behaviour control can catch it, where the model answers some should-refuse prompts.
    Scenario("twin-mismatch-genre", "twin-mismatch with genre offsets 4 (both blind spots; "
             "the model refuses ~98%: no behaviour control)", Design(
                 World(cos=1.0), twin_offset=TWIN_OFFSET),
             confound_for=(DISTINCT, PAPER, MATCHED_CLAIM),
             confound_note="both designs' blind spots, no behaviour control"),
    Scenario("twin-mismatch-behaviour", "twin-mismatch-genre, per-prompt strength std 3, "
             "signal 2: ~50% refused", Design(World(cos=1.0, **BEHAVIOUR_WORLD),
                                              twin_offset=TWIN_OFFSET),
             null_for=(DISTINCT, BEHAVIOUR_CLAIM), confound_for=(PAPER, MATCHED_CLAIM),
             confound_note="the matched control's and the paper's blind spots"),
]}


def judge_world(scenario: str, seed: int, claims: Sequence[str] = CLAIM_IDS,
                n_boot: int = DEFAULT_BOOTSTRAP) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate). Top-level so processes can run it."""
    design = SCENARIOS[scenario].design.with_seed(seed)
    if not design.n_matched:  # as the fixtures skip them: no matched rows, no verdict
        claims = tuple(c for c in claims if CLAIMS[c][0] != MATCHED)
    acts, behaviour = evidence(design)
    # Replies only where a claim reads them: the behaviour control, which
    # distinct-directions reads too.
    needs_replies = BEHAVIOUR_CLAIM in claims or DISTINCT in claims
    verdicts = claim_verdicts(acts, behaviour, claims, n_boot=n_boot,
                              refused=refusals(design) if needs_replies else None)
    return {claim: (v.outcome.value, v.estimate) for claim, v in verdicts.items()}


def run(scenarios: Iterable[str], worlds: int, *, claims: Sequence[str] = CLAIM_IDS,
        n_boot: int = DEFAULT_BOOTSTRAP, first_seed: int = 1, jobs: int = 1,
        ) -> dict[str, dict[str, Tally]]:
    """Judge ``worlds`` seeded replicates of each scenario -> scenario -> claim -> Tally.

    World seeds are ``first_seed, first_seed + 1, ...`` in every scenario, so scenarios
    differ only in what is planted. ``jobs > 1`` spreads worlds over processes.
    """
    judge = partial(judge_world, claims=tuple(claims), n_boot=n_boot)
    return tally_worlds(judge, SCENARIOS, list(scenarios), worlds, claims=lambda _: claims,
                        kind="geometry", first_seed=first_seed, jobs=jobs, chunksize=4)


def table_lines(results: dict[str, dict[str, Tally]]) -> list[str]:
    """One row per (claim, scenario) where the scenario is a null or effect for the claim.

    Columns: claim, role (null / effect / confound), scenario, worlds, SUPPORTED rate with
    its 95% Wilson interval, INCONCLUSIVE and REFUTED rates, and whether the goal is met
    (for a null: the SUPPORTED rate is at most 5%; for an effect: at least 90%, and at most
    5% REFUTED).
    """
    header = (f"{'claim':32} {'role':8} {'scenario':27} {'n':>4}  {'SUPPORTED [95% Wilson]':24}"
              f"  {'INCONCLUSIVE':24}  {'REFUTED':7} goal")
    lines = [header, "-" * len(header)]
    for claim in CLAIM_IDS:
        for name, tallies in results.items():
            scenario = SCENARIOS[name]
            if claim not in tallies:
                continue
            role = scenario.role(claim)
            if role is None:
                continue
            tally = tallies[claim]
            supported = tally.rate(Outcome.SUPPORTED)
            refuted = tally.rate(Outcome.REFUTED)
            goal = (f"none ({scenario.confound_note})" if role == "confound"
                    else goal_text(role, supported, refuted))
            lines.append(f"{claim:32} {role:8} {name:27} {tally.n:4}  {pct(supported):24}  "
                         f"{pct(tally.rate(Outcome.INCONCLUSIVE)):24}  "
                         f"{100 * refuted[0]:5.1f}%  {goal}")
    return lines


def matrix_lines(results: dict[str, dict[str, Tally]]) -> list[str]:
    """Every scenario x claim: SUPPORTED / REFUTED / INCONCLUSIVE percentages."""
    claims = [c for c in CLAIM_IDS if any(c in t for t in results.values())]
    width = 32
    lines = [f"{'scenario':27} " + " ".join(f"{c:>{width}}" for c in claims),
             f"{'':27} " + " ".join(f"{'sup / ref / inc %':>{width}}" for _ in claims)]
    for name, tallies in results.items():
        cells = []
        for claim in claims:
            tally = tallies.get(claim)
            if tally is None or not tally.n:
                cells.append(f"{'-':>{width}}")
                continue
            pct = [100 * tally.rate(o)[0] for o in (Outcome.SUPPORTED, Outcome.REFUTED,
                                                     Outcome.INCONCLUSIVE)]
            cells.append(f"{pct[0]:5.1f} / {pct[1]:5.1f} / {pct[2]:5.1f}".rjust(width))
        lines.append(f"{name:27} " + " ".join(cells))
    return lines
