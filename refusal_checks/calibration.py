"""A claim's verdict outside pytest: activations + refusal counts in, Verdict out.

Each function here computes exactly what the claim of the same id in
``claims/test_geometry.py`` computes from its fixtures: the same study
(``fixtures/directions.py``: :func:`~refusal_checks.study.study_directions` against the
general benign pool, or against the genre-matched controls) and the same verdict function
(:mod:`refusal_checks.geometry_claims`). Defaults are the claims' defaults
(``--refusal-seed 0``, ``--refusal-bootstrap 500``). That lets a planted world
(:mod:`refusal_checks.worlds`) be judged thousands of times to measure how often a claim
is SUPPORTED when it is false (calibration/run.py).

The behavioural claims (``claims/test_single_direction.py``,
``claims/test_category_steering.py``) work on a backend, not on activations:
:class:`BehaviourMeasurements` measures what ``fixtures/behaviour.py`` measures (probes,
train-half directions, judged replies, cheap scores, KL, the steering sweep) and
:func:`behaviour_verdicts` hands it to :mod:`refusal_checks.behaviour_direction` and
:mod:`refusal_checks.behaviour_categories`.
``BEHAVIOUR_SCENARIOS`` are their known-answer worlds (``calibration/run.py --behaviour``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from refusal_checks import behaviour_categories as category_claims
from refusal_checks import behaviour_direction as direction_claims
from refusal_checks import geometry_claims, shared_core
from refusal_checks.activations import LayerView
from refusal_checks.arditi import ARDITI_CLAIMS
from refusal_checks.behaviour import RefusalBehaviour, as_behaviour
from refusal_checks.behaviour_control import CONTROL as BEHAVIOUR_CONTROL
from refusal_checks.behaviour_control import BehaviourDirections, behaviour_directions
from refusal_checks.study import DirectionStudy, study_directions
from refusal_checks.stats import normal_quantile
from refusal_checks.synthetic import SyntheticBackend, World
from refusal_checks.verdict import Verdict
from refusal_checks.worlds import Design

# The claims' option defaults (refusal_checks/plugin.py: --refusal-seed, --refusal-bootstrap).
DEFAULT_SEED = 0
DEFAULT_BOOTSTRAP = 500

# Names of the three controls, as fixtures/directions.py labels its studies.
GENERAL = "general benign pool"
MATCHED = "genre-matched benign"
BEHAVIOUR = BEHAVIOUR_CONTROL

# claim id -> (which study it reads, the verdict function). The behaviour control's
# "study" is a BehaviourDirections (counts + study), built from judged replies.
CLAIMS: dict[str, tuple[str, Callable[[Any, RefusalBehaviour], Verdict]]] = {
    "stable-within-category": (GENERAL, geometry_claims.stable_within_category),
    "distinct-directions": (GENERAL, geometry_claims.distinct_directions),
    "more-than-one-direction": (MATCHED, geometry_claims.more_than_one_direction),
    "distinct-under-matched-control": (MATCHED, geometry_claims.distinct_under_matched_control),
    "distinct-under-behaviour-control": (BEHAVIOUR,
                                         geometry_claims.distinct_under_behaviour_control),
    "shared-refusal-core": (MATCHED, shared_core.shared_refusal_core),
    "category-specific-parts-stable": (MATCHED, shared_core.specific_parts_stable),
}
CLAIM_IDS = tuple(CLAIMS)


def _view(acts: LayerView | Mapping[str, Any]) -> LayerView:
    """A LayerView from a LayerView or a mapping with refuse / matched / benign (/ layer)."""
    if isinstance(acts, LayerView):
        return acts
    missing = [key for key in ("refuse", "benign") if key not in acts]
    if missing:
        raise TypeError(f"activations lack {', '.join(missing)}: pass a LayerView or a mapping "
                        "with 'refuse' (category -> (prompt, d_model)), 'matched' (same, "
                        "optional) and 'benign' ((prompt, d_model)).")
    return LayerView(dict(acts["refuse"]), dict(acts.get("matched") or {}),
                     np.asarray(acts["benign"]), int(acts.get("layer", 0)))


def study(acts: LayerView | Mapping[str, Any], control: str, *, seed: int = DEFAULT_SEED,
          n_boot: int = DEFAULT_BOOTSTRAP) -> DirectionStudy:
    """The study the ``category_directions`` (GENERAL) or ``matched_directions`` (MATCHED)
    fixture builds.

    Raises:
        ValueError: For MATCHED when fewer than two categories have a matched control (the
            fixture then skips the claim: there is no verdict).
    """
    view = _view(acts)
    if control == GENERAL:
        return study_directions(view.refuse, view.benign, control=GENERAL, layer=view.layer,
                                seed=seed, n_boot=n_boot)
    if control != MATCHED:
        raise ValueError(f"control {control!r} is not {GENERAL!r} or {MATCHED!r}.")
    refuse = {c: a for c, a in view.refuse.items() if c in view.matched}
    if len(refuse) < 2:
        raise ValueError("fewer than two categories have a genre-matched benign control; the "
                         "matched-control claim is skipped there and has no verdict.")
    return study_directions(refuse, view.matched, control=MATCHED, layer=view.layer, seed=seed,
                            n_boot=n_boot)


def behaviour_study(acts: LayerView | Mapping[str, Any], refused: Mapping[str, Any], *,
                    seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_BOOTSTRAP,
                    judge: str | None = None) -> BehaviourDirections:
    """What the ``behaviour_directions`` fixture builds, from the judge's verdicts on the
    replies to each category's should-refuse prompts (``refused``: category -> bools;
    ``judge`` names the judge, by default the substring judge of the claims)."""
    from refusal_checks.judges import SubstringJudge

    view = _view(acts)
    return behaviour_directions(view.refuse, refused, layer=view.layer, seed=seed,
                                n_boot=n_boot, judge=judge or SubstringJudge().name)


def claim_verdicts(acts: LayerView | Mapping[str, Any], behaviour: Any,
                   claims: Iterable[str] | None = None, *, seed: int = DEFAULT_SEED,
                   n_boot: int = DEFAULT_BOOTSTRAP,
                   refused: Mapping[str, Any] | None = None) -> dict[str, Verdict]:
    """Verdicts of several claims, building each study once.

    Args:
        acts: Activations at the claims' layer, as the ``layer_activations`` fixture holds.
        behaviour: A :class:`RefusalBehaviour` or anything with ``refused, n,
            benign_refused, benign_n``.
        claims: Claim ids (see ``CLAIM_IDS``); by default every claim whose inputs are
            given (the matched-control claims only with two categories with matched rows,
            as the fixtures skip them otherwise; the behaviour control only with
            ``refused``).
        seed: ``--refusal-seed``.
        n_boot: ``--refusal-bootstrap``.
        refused: category -> the judge's verdict on the reply to each should-refuse prompt
            (:func:`refusal_checks.worlds.refusals`); needed by the behaviour control, and
            by distinct-directions' genre caveat when fewer than two categories have
            matched rows.
    """
    view = _view(acts)
    given = {GENERAL: True, MATCHED: len(view.matched) >= 2, BEHAVIOUR: refused is not None}
    wanted = list(claims) if claims is not None else [
        c for c in CLAIM_IDS if given[CLAIMS[c][0]]]
    unknown = [c for c in wanted if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim ids {unknown}. Known: {', '.join(CLAIM_IDS)}.")
    counts = as_behaviour(behaviour)
    studies: dict[str, Any] = {}

    def get(control: str) -> Any:
        if control not in studies:
            if control != BEHAVIOUR:
                studies[control] = study(view, control, seed=seed, n_boot=n_boot)
            elif refused is None:
                raise ValueError("the behaviour control needs refused=: the judge's verdict "
                                 "on the reply to every should-refuse prompt, per category.")
            else:
                studies[control] = behaviour_study(view, refused, seed=seed, n_boot=n_boot)
        return studies[control]

    out = {}
    for claim in wanted:
        control, judge = CLAIMS[claim]
        if claim == "distinct-directions":  # as the claim's test: the genre caveat
            matched = len(view.matched)
            caveat = geometry_claims.genre_caveat(
                matched, get(BEHAVIOUR) if matched < 2 and refused is not None else None)
            out[claim] = judge(get(control), counts, caveat=caveat)
        else:
            out[claim] = judge(get(control), counts)
    return out


def stable_within_category(acts: LayerView | Mapping[str, Any], behaviour: Any, *,
                           seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "stable-within-category" (general benign pool)."""
    return claim_verdicts(acts, behaviour, ["stable-within-category"], seed=seed,
                          n_boot=n_boot)["stable-within-category"]


def distinct_directions(acts: LayerView | Mapping[str, Any], behaviour: Any, *,
                        seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "distinct-directions" (general benign pool)."""
    return claim_verdicts(acts, behaviour, ["distinct-directions"], seed=seed,
                          n_boot=n_boot)["distinct-directions"]


def distinct_under_behaviour_control(acts: LayerView | Mapping[str, Any], behaviour: Any,
                                     refused: Mapping[str, Any], *, seed: int = DEFAULT_SEED,
                                     n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "distinct-under-behaviour-control" (refused vs answered per category)."""
    return claim_verdicts(acts, behaviour, ["distinct-under-behaviour-control"], seed=seed,
                          n_boot=n_boot, refused=refused)["distinct-under-behaviour-control"]


def more_than_one_direction(acts: LayerView | Mapping[str, Any], behaviour: Any, *,
                            seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "more-than-one-direction" (genre-matched benign controls)."""
    return claim_verdicts(acts, behaviour, ["more-than-one-direction"], seed=seed,
                          n_boot=n_boot)["more-than-one-direction"]


def distinct_under_matched_control(acts: LayerView | Mapping[str, Any], behaviour: Any, *,
                                   seed: int = DEFAULT_SEED,
                                   n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "distinct-under-matched-control" (genre-matched benign controls)."""
    return claim_verdicts(acts, behaviour, ["distinct-under-matched-control"], seed=seed,
                          n_boot=n_boot)["distinct-under-matched-control"]


# --- Behavioural claims (claims/test_single_direction.py, claims/test_category_steering.py)

# The measurement settings of fixtures/behaviour.py (a unit test checks they are equal).
HARMFUL_CATEGORIES = ("safety_core", "crime_assistance", "hate_speech", "safety_concerns")
PROBE_PER_CATEGORY = 8
PROBE_BENIGN = 32
REPLY_TOKENS = 32
ARDITI_PER_CATEGORY = 24
ARDITI_BENIGN = 64
SWEEP_STRENGTHS = (0.1, 0.2, 0.35, 0.5)
DEFAULT_POSITION = -2

BEHAVIOUR_CLAIM_IDS = (
    "ablation-bypasses-refusal", "addition-induces-refusal",
    "ablation-keeps-harmless-behaviour", "random-direction-does-not-bypass",
    "random-direction-does-not-induce", "shared-knob", "ablation-lowers-category-refusal",
    "ablation-is-category-selective",
)


class BehaviourMeasurements:
    """What the fixtures of ``fixtures/behaviour.py`` hold, for one backend, without caches.

    Probes are the first PROBE_PER_CATEGORY prompts of each category's test half and the
    first PROBE_BENIGN of the benign pool's test half (the KL claim reads the whole test
    half); directions are raw differences in
    means of train halves at the paper's layer and position; replies are greedy,
    REPLY_TOKENS long, judged by the substring judge; sweeps use the cheap score (> 0).
    Everything is computed on first use, so a claim pays only for what it reads.
    """

    def __init__(self, backend: Any, collection: Any, *, seed: int = DEFAULT_SEED,
                 position: int = DEFAULT_POSITION) -> None:
        from refusal_checks.activations import collect, paper_layer
        from refusal_checks.behaviour import observe_refusals
        from refusal_checks.effects import mean_norm
        from refusal_checks.geometry import diff_in_means
        from refusal_checks.judges import SubstringJudge

        self.backend, self.seed = backend, seed
        self.judge = SubstringJudge()
        self.layer = paper_layer(backend.n_layers)
        acts = collect(backend, collection, position=position, cache=None).at_layer(self.layer)
        self.acts, self.collection = acts, collection  # the style claims read them too
        self.harmful_categories = [c for c in HARMFUL_CATEGORIES if c in collection.categories] \
            or list(collection.categories)
        self.probe_harmful = {name: c.refuse.split("test").head(PROBE_PER_CATEGORY)
                              for name, c in collection.categories.items()}
        self.probe_benign = collection.benign.split("test").head(PROBE_BENIGN)
        self.arditi_harmful = [collection.categories[c].refuse.split("test").head(
            ARDITI_PER_CATEGORY) for c in self.harmful_categories]
        self.arditi_benign = collection.benign.split("test").head(ARDITI_BENIGN)
        self.kl_prompts = collection.benign.split("test")  # the KL claim reads all of them

        def train_rows(prompts: Any) -> np.ndarray:
            index = {text: i for i, text in enumerate(prompts.texts)}
            return np.array([index[t] for t in prompts.split("train").texts], dtype=int)

        pool = acts.benign[train_rows(collection.benign)]
        train = {name: acts.refuse[name][train_rows(c.refuse)]
                 for name, c in collection.categories.items()}
        self.train_directions = {name: diff_in_means(a, pool) for name, a in train.items()}
        self.reference_norm = mean_norm(acts.benign)
        self.behaviour = observe_refusals(backend, collection, seed=seed, cache=None)
        self.tokens = backend.refusal_token_ids()
        self._memo: dict[Any, Any] = {}

    def refused(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        from refusal_checks.effects import judged

        return judged(self.backend, prompts, self.judge, intervention, None,
                      max_new_tokens=REPLY_TOKENS)[0]

    def score(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        from refusal_checks.effects import scores

        return scores(self.backend, prompts, self.tokens, intervention, None)

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def harmful_refused(self, intervention: Any = None) -> np.ndarray:
        """The single-direction claims' harmful probe (``arditi_probe``)."""
        return np.concatenate([self.refused(p, intervention) for p in self.arditi_harmful])

    def base_harmful(self) -> np.ndarray:
        return self._once("base harmful", self.harmful_refused)

    def base_benign(self) -> np.ndarray:
        return self._once("base benign", lambda: self.refused(self.arditi_benign))

    def agreement(self) -> dict[str, Any]:
        """The ``score_agreement`` fixture."""
        from refusal_checks.scoring import agreement

        def compute() -> dict[str, Any]:
            sets = [self.probe_harmful[c] for c in self.harmful_categories] + [self.probe_benign]
            by_score = np.concatenate([self.score(p) > 0 for p in sets])
            by_judge = np.concatenate([self.refused(p) for p in sets])
            return agreement(by_score, by_judge)

        return self._once("agreement", compute)

    def knob_sweep(self) -> Any:
        """The ``knob_sweep`` fixture on the fixed probe."""
        from refusal_checks.staged_claims import knob_sweep

        return knob_sweep(self.score, self.train_directions,
                          [self.probe_harmful[c] for c in self.harmful_categories],
                          [self.probe_benign], layer=self.layer,
                          reference_norm=self.reference_norm, strengths=SWEEP_STRENGTHS)

    def selection(self) -> Any:
        """The ``arditi_selection`` fixture: :func:`refusal_checks.arditi.run_selection` on
        16-token replies to the harmful categories and the behaviour probe's benign ones."""
        from refusal_checks.arditi import run_selection
        from refusal_checks.behaviour_control import REPLY_TOKENS as CONTROL_TOKENS
        from refusal_checks.effects import judged

        def compute() -> Any:
            refused = {c: judged(self.backend, self.collection.categories[c].refuse,
                                 self.judge, None, None, max_new_tokens=CONTROL_TOKENS)[0]
                       for c in self.harmful_categories}
            return run_selection(self.backend, self.collection, self.harmful_categories,
                                 refused, self.behaviour.benign_prompts)

        return self._once("selection", compute)

    def _arditi(self, claim: str, s: Any) -> Verdict:
        """A single-direction claim on the selected direction (claims/test_single_direction.py)."""
        from refusal_checks.effects import kl
        from refusal_checks.interventions import Ablate

        b, seed = self.behaviour, self.seed
        if claim == "ablation-bypasses-refusal":
            ablated = self.harmful_refused(Ablate(s.direction, "refusal"))
            return direction_claims.ablation_bypasses_refusal(self.base_harmful(), ablated, b,
                                                              self.judge.name)
        if claim == "addition-induces-refusal":
            edit = direction_claims.raw_addition(s.layer, s.direction, s.reference_norm,
                                                 "refusal")
            return direction_claims.addition_induces_refusal(
                self.base_benign(), self.refused(self.arditi_benign, edit), b, self.judge.name)
        if claim == "ablation-keeps-harmless-behaviour":
            values = kl(self.backend, self.kl_prompts, Ablate(s.direction), None)
            return direction_claims.ablation_keeps_harmless_behaviour(values, b, seed)
        randoms = direction_claims.random_controls(s.direction, seed)
        if claim == "random-direction-does-not-bypass":
            ablated = [self.harmful_refused(Ablate(r, f"random {i}"))
                       for i, r in enumerate(randoms)]
            return direction_claims.random_direction_does_not_bypass(self.base_harmful(),
                                                                     ablated, b)
        steered = [self.refused(self.arditi_benign, direction_claims.raw_addition(
            s.layer, r, s.reference_norm, f"random {i}")) for i, r in enumerate(randoms)]
        return direction_claims.random_direction_does_not_induce(self.base_benign(), steered, b)

    def verdict(self, claim: str) -> Verdict:
        """The verdict of one behavioural claim, as its test in ``claims/`` computes it."""
        from refusal_checks.effects import kl
        from refusal_checks.interventions import Ablate

        b, seed = self.behaviour, self.seed
        if claim in ARDITI_CLAIMS:
            from refusal_checks.arditi import no_direction, with_selection

            selection = self.selection()
            verdict = (self._arditi(claim, selection) if selection.found
                       else no_direction(claim, selection, b, seed))
            return with_selection(verdict, selection)
        if claim == "shared-knob":
            return category_claims.shared_knob(self.knob_sweep(), self.agreement(), b, seed)
        if claim == "ablation-lowers-category-refusal":
            per_category = {
                name: (self.score(self.probe_harmful[name]) > 0,
                       self.score(self.probe_harmful[name], Ablate(direction, name)) > 0)
                for name, direction in self.train_directions.items()}
            return category_claims.ablation_lowers_category_refusal(
                per_category, self.agreement(), b, seed)
        if claim == "ablation-is-category-selective":
            from refusal_checks.cross_ablation import (ablation_is_category_selective,
                                                       measure_cross_ablation)

            matrix = measure_cross_ablation(self.score, self.probe_harmful,
                                            self.train_directions, seed)
            return ablation_is_category_selective(matrix, self.agreement(), b, seed)
        raise ValueError(f"unknown behavioural claim id {claim!r}. Known: "
                         f"{', '.join(BEHAVIOUR_CLAIM_IDS)}.")


def behaviour_verdicts(backend: Any, collection: Any,
                       claims: Iterable[str] = BEHAVIOUR_CLAIM_IDS, *,
                       seed: int = DEFAULT_SEED, staged: bool = True) -> dict[str, Verdict]:
    """Verdicts of behavioural claims on ``backend`` (any Backend with ``generate``,
    ``last_logprobs``, ``residual_stream``) over ``collection``, measured as the fixtures do:
    on staged probes (:mod:`refusal_checks.staged_calibration`) as the claims run, or on
    the fixed probes (``staged=False``, the design before staging).
    """
    wanted = list(claims)
    unknown = [c for c in wanted if c not in BEHAVIOUR_CLAIM_IDS]
    if unknown:
        raise ValueError(f"unknown behavioural claim ids {unknown}. Known: "
                         f"{', '.join(BEHAVIOUR_CLAIM_IDS)}.")
    measured = BehaviourMeasurements(backend, collection, seed=seed)
    if not staged:
        return {claim: measured.verdict(claim) for claim in wanted}
    from refusal_checks.staged_calibration import STAGED_CLAIM_IDS, staged_verdict

    return {claim: staged_verdict(measured, claim) if claim in STAGED_CLAIM_IDS
            else measured.verdict(claim) for claim in wanted}


# --- Known-answer worlds for the behavioural claims (calibration/run.py --behaviour) ----

# The bundled collection's categories, in its order (slot 0, safety_core, reads the benign
# pool unless a design says otherwise), 64 refused prompts each and 128 benign: the
# probes of fixtures/behaviour.py are then exactly as large as on the bundled prompts.
BUNDLED_NAMES = ("safety_core", "over_refusal", "humanizing", "incomplete", "indeterminate",
                 "safety_concerns", "unsupported", "hate_speech", "crime_assistance",
                 "inappropriate_topics", "unqualified_advice")
# CoCoNot-like categories: the second knob of the two-knob worlds.
COCONOT_LIKE = ("over_refusal", "humanizing", "incomplete", "indeterminate", "unsupported")

# Boundary parameters found by a grid over 40 worlds each (calibration/README.md): each
# puts the mean over worlds of the claim's estimate, directions estimated from train halves
# as the claims estimate them, at the claim's threshold. The truth of a single world then
# varies a little around the threshold with its estimated direction.
BOUNDARY_ABLATION_REACH = 0.54   # kept refusal rate under ablation ~0.5 (0.55: 0.473)
BOUNDARY_STEER_REACH = 0.5       # induced refusal rate 0.499
BOUNDARY_BENIGN_SHIFT = 0.04     # true mean next-token KL 0.100 (4,000 fresh prompts)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def exact_half_offsets(signal: float = 4.0) -> tuple[float, float]:
    """(ablation offset, steering offset) that put the kept / induced rate at exactly 0.5.

    In a one-direction world with interventions that reach nothing (reach 0), a harmful
    prompt's decision is ``signal + z`` and a benign one's ``z`` (z standard normal);
    under any ablation the offset is added, so the rate of baseline refusals kept is
    ``P(z > T - s - a) / P(z > T - s)``, and under any steering the rate of baseline
    answers refused is ``P(T - b < z < T) / P(z < T)``, with T the refusal threshold.
    Both are exactly 0.5 in every world: boundary nulls with no spread in the truth.
    """
    t = SyntheticBackend.REFUSAL_THRESHOLD
    ablate = t - signal - normal_quantile(1.0 - 0.5 * _phi(signal - t))
    steer = t - normal_quantile(0.5 * _phi(t))
    return ablate, steer


EXACT_HALF_ABLATION, EXACT_HALF_STEER = exact_half_offsets()


def exact_change_offsets(change: float, signal: float = 4.0) -> tuple[float, float]:
    """(ablation offset, steering offset) under which ANY edit moves a refusal rate by
    exactly ``change``: the harmful rate down, the benign rate up.

    As in :func:`exact_half_offsets` (reach 0, one direction): a harmful prompt's decision
    is ``signal + z``, refused with probability ``Phi(signal - T)``; with the offset ``a``
    added under any ablation, ``Phi(signal - T + a)``. A benign prompt is refused with
    probability ``1 - Phi(T)``, under any steering with offset ``b``, ``1 - Phi(T - b)``.
    The random-direction controls' boundary nulls: every random direction changes refusal
    by exactly their margin, in every world.
    """
    t = SyntheticBackend.REFUSAL_THRESHOLD
    ablate = normal_quantile(_phi(signal - t) - change) - (signal - t)
    steer = t - normal_quantile(_phi(t) - change)
    return ablate, steer


CONTROL_ABLATION, CONTROL_STEER = exact_change_offsets(direction_claims.CONTROL_MARGIN)
# Two knobs with cosine 0.5 (signal 2): population path deviation 0.151 ~ PATH_MARGIN,
# computed from the planted rates with KnobSweep.path_deviation; every direction moves
# over-refusal by >= 0.44 across the sweep, so the knob precondition holds.
BOUNDARY_KNOB_COS = 0.5
# Category directions with this cosine (signal 4) make ablation selective by exactly the
# claim's margin on average: mean selectivity over 12 worlds each 0.262 at cos 0.85,
# 0.171 at 0.88, 0.117 at 0.90 (directions estimated from train halves, as the claim does).
BOUNDARY_SELECTIVE_COS = 0.854
SELECTIVE = "ablation-is-category-selective"
# The planted-site worlds' only refusal site (layer, position) among Arditi et al.'s
# candidates (8 blocks: layers 0..5; a 2-token template: positions -2, -1).
PLANTED_SITE = (2, -2)


@dataclass(frozen=True)
class BehaviourScenario:
    """A family of planted worlds for the behavioural claims (see known_answers.Scenario).

    Subclasses for other claim families (style_calibration.StyleScenario) set CLAIM_IDS.
    """

    name: str
    truth: str
    design: Design
    null_for: tuple[str, ...] = ()
    effect_for: tuple[str, ...] = ()
    confound_for: tuple[str, ...] = ()  # false for the mechanism, true for the statistic
    # What the goal column says for a confound row: why no goal is set.
    confound_note: str = "genre"
    CLAIM_IDS: ClassVar[tuple[str, ...]] = BEHAVIOUR_CLAIM_IDS

    def role(self, claim: str) -> str | None:
        if claim in self.null_for:
            return "null"
        if claim in self.effect_for:
            return "effect"
        if claim in self.confound_for:
            return "confound"
        return None

    def claims(self) -> tuple[str, ...]:
        return tuple(c for c in self.CLAIM_IDS if self.role(c))


def behaviour_design(*, signal: float = 4.0, cos: float = 1.0, **extras: Any) -> Design:
    """A behaviour world: the bundled categories and sizes, no genre offsets, d_model 64."""
    return Design(World(cos=cos, signal=signal, genre=0.0), names=BUNDLED_NAMES,
                  n_matched=0, **extras)


_ARDITI = ("ablation-bypasses-refusal", "addition-induces-refusal",
           "random-direction-does-not-bypass", "random-direction-does-not-induce")
BEHAVIOUR_SCENARIOS: dict[str, BehaviourScenario] = {s.name: s for s in [
    BehaviourScenario("one-direction", "one refusal direction (cos 1), signal 4: refuses ~98%",
                      behaviour_design(),
                      effect_for=_ARDITI + ("shared-knob", "ablation-lowers-category-refusal"),
                      null_for=(SELECTIVE,)),
    # At signal 2 the raw direction adds 2 to a benign decision: induced refusal ~0.5, a
    # boundary, so addition-induces-refusal is not an effect here.
    # Arditi et al.'s selection then finds no candidate whose raw addition lifts the mean
    # refusal score above 0 (induce < 0 everywhere), so the protocol selects nothing and
    # the claims about its direction have no direction to be judged on.
    BehaviourScenario("one-direction-weak", "one refusal direction, signal 2: refuses ~50% "
                      "(qwen-coder-0.5b: 56%)", behaviour_design(signal=2.0),
                      effect_for=("shared-knob", "ablation-lowers-category-refusal"),
                      null_for=(SELECTIVE,),
                      confound_for=("ablation-bypasses-refusal",
                                    "random-direction-does-not-bypass",
                                    "random-direction-does-not-induce"),
                      confound_note="no candidate passes"),
    BehaviourScenario("distinct-directions", "cos 0.55 between categories, signal 4",
                      behaviour_design(cos=0.55),
                      effect_for=("random-direction-does-not-bypass",
                                  "random-direction-does-not-induce",
                                  "ablation-lowers-category-refusal", SELECTIVE)),
    BehaviourScenario("one-direction-genre", "one refusal direction, genre offsets 4 (as "
                      "large as the signal): each category's direction carries its genre",
                      Design(World(cos=1.0, signal=4.0, genre=4.0), names=BUNDLED_NAMES,
                             n_matched=0), confound_for=(SELECTIVE,)),
    BehaviourScenario("orthogonal-directions", "cos 0 between categories, signal 4: ablating "
                      "one category's direction leaves the others' refusal",
                      behaviour_design(cos=0.0), effect_for=(SELECTIVE,)),
    BehaviourScenario("boundary-selective", f"cos {BOUNDARY_SELECTIVE_COS}, signal 4: mean "
                      "selectivity ~0.25, the margin", behaviour_design(
                          cos=BOUNDARY_SELECTIVE_COS), null_for=(SELECTIVE,)),
    # Arditi et al.'s selection (refusal_checks/selection.py) in worlds with one right answer
    # and with none (claims/test_single_direction.py argues the no-candidate verdicts).
    BehaviourScenario("planted-site", f"one direction planted at layer {PLANTED_SITE[0]}, "
                      f"position {PLANTED_SITE[1]} only (noise elsewhere); benign prompts 2 "
                      "units on the compliant side", behaviour_design(
                          planted_site=PLANTED_SITE, benign_shift=2.0), effect_for=ARDITI_CLAIMS),
    BehaviourScenario("no-steerable-direction", "one direction, but no added vector reaches "
                      "the refusal readout: no candidate induces, so none is selected",
                      behaviour_design(steer_reach=0.0),
                      null_for=("addition-induces-refusal",)),
    BehaviourScenario("no-linear-direction", "refusal neither added nor ablated along any "
                      "direction (steer and ablation reach 0): none is selected",
                      behaviour_design(steer_reach=0.0, ablation_reach=0.0),
                      null_for=("ablation-bypasses-refusal", "addition-induces-refusal")),
    BehaviourScenario("kl-filter-fails", "one direction; any ablation adds 3 to every "
                      "decision, so every candidate's ablation moves harmless prompts (KL > "
                      "0.1) while addition does induce refusal: none is selected",
                      behaviour_design(ablation_offset=3.0),
                      confound_for=("addition-induces-refusal",),
                      confound_note="true, never selected: REFUTED must stay <= 5%"),
    BehaviourScenario("harmless-far", "one direction; benign prompts 2 noise units on the "
                      "compliant side of it", behaviour_design(benign_shift=2.0),
                      effect_for=("ablation-keeps-harmless-behaviour",)),
    BehaviourScenario("never-refuses", "signal 0: the model never refuses",
                      behaviour_design(signal=0.0), null_for=BEHAVIOUR_CLAIM_IDS),
    BehaviourScenario("partial-ablation", f"ablation removes {BOUNDARY_ABLATION_REACH} of the "
                      "projection: kept refusal 0.5", behaviour_design(
                          ablation_reach=BOUNDARY_ABLATION_REACH),
                      null_for=("ablation-bypasses-refusal",)),
    BehaviourScenario("no-ablation", "ablation reaches nothing (reach 0)",
                      behaviour_design(ablation_reach=0.0),
                      null_for=("ablation-bypasses-refusal",
                                "ablation-lowers-category-refusal", SELECTIVE)),
    BehaviourScenario("half-kept", f"ablation reaches nothing and any ablation adds "
                      f"{EXACT_HALF_ABLATION:.4f}: kept refusal exactly 0.5 in every world",
                      behaviour_design(ablation_reach=0.0, ablation_offset=EXACT_HALF_ABLATION),
                      null_for=("ablation-bypasses-refusal", "random-direction-does-not-bypass")),
    BehaviourScenario("half-induced", f"steering reaches nothing and any steering adds "
                      f"{EXACT_HALF_STEER:.4f}: induced refusal exactly 0.5 in every world",
                      behaviour_design(steer_reach=0.0, steer_offset=EXACT_HALF_STEER),
                      null_for=("addition-induces-refusal", "random-direction-does-not-induce")),
    BehaviourScenario("control-shift-ablation", f"any ablation adds {CONTROL_ABLATION:.4f}: "
                      f"harmful refusal falls by exactly {direction_claims.CONTROL_MARGIN}",
                      behaviour_design(ablation_reach=0.0, ablation_offset=CONTROL_ABLATION),
                      null_for=("random-direction-does-not-bypass",)),
    BehaviourScenario("control-shift-steer", f"any steering adds {CONTROL_STEER:.4f}: benign "
                      f"refusal rises by exactly {direction_claims.CONTROL_MARGIN}",
                      behaviour_design(steer_reach=0.0, steer_offset=CONTROL_STEER),
                      null_for=("random-direction-does-not-induce",)),
    BehaviourScenario("weak-addition", f"{BOUNDARY_STEER_REACH} of an added vector reaches "
                      "the readout: induced refusal 0.5",
                      behaviour_design(steer_reach=BOUNDARY_STEER_REACH),
                      null_for=("addition-induces-refusal",)),
    BehaviourScenario("harmless-moves", f"benign shift {BOUNDARY_BENIGN_SHIFT}: mean KL 0.1",
                      behaviour_design(benign_shift=BOUNDARY_BENIGN_SHIFT),
                      null_for=("ablation-keeps-harmless-behaviour",)),
    BehaviourScenario("two-knobs", "safety and CoCoNot-like categories on two directions, "
                      "cos 0.4, signal 2: path deviation 0.19 > 0.15",
                      behaviour_design(signal=2.0, knob_cos=0.4, knob_b=COCONOT_LIKE,
                                       benign_readout="over_refusal"),
                      null_for=("shared-knob",)),
    BehaviourScenario("two-knobs-boundary", f"two knobs, cos {BOUNDARY_KNOB_COS}: path "
                      "deviation 0.151", behaviour_design(
                          signal=2.0, knob_cos=BOUNDARY_KNOB_COS, knob_b=COCONOT_LIKE,
                          benign_readout="over_refusal"),
                      null_for=("shared-knob",)),
    BehaviourScenario("one-unablatable", "one category's refusal is not carried by its "
                      "direction: its drop is exactly 0", behaviour_design(unablatable=1),
                      null_for=("ablation-lowers-category-refusal",)),
]}


def judge_behaviour_world(scenario: str | BehaviourScenario, seed: int,
                          claims: Sequence[str] | None = None,
                          ) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate). Top-level so processes can run it."""
    from refusal_checks.worlds import PlantedBackend, collection

    chosen = BEHAVIOUR_SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    design = chosen.design.with_seed(seed)
    verdicts = behaviour_verdicts(PlantedBackend(design), collection(design),
                                  claims if claims is not None else chosen.claims())
    return {claim: (v.outcome.value, v.estimate) for claim, v in verdicts.items()}


def _judge_only(scenario: str, seed: int, claims: Sequence[str]
                ) -> dict[str, tuple[str, float]]:
    """:func:`judge_behaviour_world` restricted to the scenario's claims among ``claims``."""
    wanted = [c for c in BEHAVIOUR_SCENARIOS[scenario].claims() if c in claims]
    return judge_behaviour_world(scenario, seed, wanted)


def run_behaviour(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1,
                  jobs: int = 1, only: Sequence[str] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Judge ``worlds`` seeded replicates of each behaviour scenario -> scenario -> claim ->
    :class:`~refusal_checks.known_answers.Tally` (only the claims the scenario is a null or
    an effect for, and of those only ``only`` when given). World seeds are
    ``first_seed, first_seed + 1, ...`` in every scenario.
    """
    def claims(name: str) -> tuple[str, ...]:
        return tuple(c for c in BEHAVIOUR_SCENARIOS[name].claims()
                     if only is None or c in only)

    judge = judge_behaviour_world if only is None else partial(_judge_only, claims=only)
    return tally_worlds(judge, BEHAVIOUR_SCENARIOS, list(scenarios), worlds, claims=claims,
                        kind="behaviour", first_seed=first_seed, jobs=jobs, chunksize=8)


def tally_worlds(judge: Callable[[str, int], Mapping[str, tuple[str, float]]],
                 scenarios: Mapping[str, Any], names: Sequence[str], worlds: int, *,
                 claims: Callable[[str], Iterable[str]], kind: str, first_seed: int = 1,
                 jobs: int = 1, chunksize: int = 8,
                 serial: Callable[[str, int], Mapping[str, tuple[str, float]]] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Run ``judge(scenario, seed) -> claim -> (outcome, estimate)`` on ``worlds`` seeded
    worlds of each scenario (in ``jobs`` processes) and tally the outcomes per claim.

    ``serial`` replaces ``judge`` in a single process (e.g. with an encoder that cannot be
    sent to worker processes).
    """
    from concurrent.futures import ProcessPoolExecutor

    from refusal_checks.known_answers import Tally

    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise ValueError(f"unknown {kind} scenarios {unknown}. Known: {', '.join(scenarios)}.")
    tasks = [(name, first_seed + i) for name in names for i in range(worlds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(judge, *zip(*tasks), chunksize=chunksize))
    else:
        results = [(serial or judge)(name, seed) for name, seed in tasks]
    out = {name: {c: Tally() for c in claims(name)} for name in names}
    for (name, _), result in zip(tasks, results):
        for claim, (outcome, estimate) in result.items():
            out[name][claim].counts[outcome] += 1
            out[name][claim].estimates.append(estimate)
    return out


def behaviour_table_lines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One row per (claim, scenario): role, worlds, SUPPORTED and INCONCLUSIVE rates with
    95% Wilson intervals, mean estimate, and whether the goal is met (null: SUPPORTED at
    most 5%; effect: at least 90%)."""
    from refusal_checks.known_answers import goal_text, mean_estimate, pct
    from refusal_checks.verdict import Outcome

    header = (f"{'claim':34} {'role':6} {'scenario':22} {'n':>4}  "
              f"{'SUPPORTED [95% Wilson]':24}  {'INCONCLUSIVE':24}  {'REFUTED':7} "
              f"{'mean est':>8}  goal")
    lines = [header, "-" * len(header)]
    for claim in BEHAVIOUR_CLAIM_IDS:
        for name, tallies in results.items():
            if claim not in tallies:
                continue
            scenario = BEHAVIOUR_SCENARIOS[name]
            role = scenario.role(claim)
            tally = tallies[claim]
            supported = tally.rate(Outcome.SUPPORTED)
            goal = (f"none ({scenario.confound_note})" if role == "confound"
                    else goal_text(role, supported))
            refuted = 100 * tally.rate(Outcome.REFUTED)[0]
            lines.append(f"{claim:34} {role:6} {name:22} {tally.n:4}  {pct(supported):24}  "
                         f"{pct(tally.rate(Outcome.INCONCLUSIVE)):24}  {refuted:5.1f}%  "
                         f"{mean_estimate(tally):8.3f}  "
                         f"{goal}")
    return lines


def roles_table_lines(results: Mapping[str, Mapping[str, Any]], claim_ids: Sequence[str],
                      scenarios: Mapping[str, BehaviourScenario], *,
                      widths: tuple[int, int] = (34, 21)) -> list[str]:
    """One row per (claim, scenario): role (null / effect / -: not planted either way),
    worlds, SUPPORTED / INCONCLUSIVE / REFUTED rates with 95% Wilson intervals, mean
    estimate, and whether the goal is met (null: SUPPORTED at most 5%; effect: at least
    90%). ``widths``: of the claim and scenario columns."""
    from refusal_checks.known_answers import goal_text, mean_estimate, pct
    from refusal_checks.verdict import Outcome

    claim_w, name_w = widths
    header = (f"{'claim':{claim_w}} {'role':6} {'scenario':{name_w}} {'n':>4}  "
              f"{'SUPPORTED [95% Wilson]':24}  {'INCONCLUSIVE':24}  {'REFUTED':6}  "
              f"{'mean est':>8}  goal")
    lines = [header, "-" * len(header)]
    for claim in claim_ids:
        for name, tallies in results.items():
            if claim not in tallies:
                continue
            role = scenarios[name].role(claim)
            tally = tallies[claim]
            supported = tally.rate(Outcome.SUPPORTED)
            goal = "" if role is None else goal_text(role, supported)
            refuted = 100 * tally.rate(Outcome.REFUTED)[0]
            lines.append(f"{claim:{claim_w}} {role or '-':6} {name:{name_w}} {tally.n:4}  "
                         f"{pct(supported):24}  {pct(tally.rate(Outcome.INCONCLUSIVE)):24}  "
                         f"{refuted:5.1f}%  {mean_estimate(tally):8.3f}  {goal}")
    return lines
