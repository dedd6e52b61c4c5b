"""Known-answer worlds for the behavioural claims (``calibration/run.py --behaviour``).

Each :class:`BehaviourScenario` plants a family of worlds (:mod:`refusal_checks.calibration.worlds`)
in which some behavioural claims are false (nulls) and some true (effects); each world is
measured and judged as the claims are
(:func:`refusal_checks.calibration.measurements.behaviour_verdicts`), and the outcomes are
counted (:mod:`refusal_checks.calibration.tally`). The other claim families' scenarios
(style, oracle, SAE) subclass :class:`BehaviourScenario`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from refusal_checks.verdicts import single_direction as direction_claims
from refusal_checks.measure.arditi import ARDITI_CLAIMS
from refusal_checks.calibration.measurements import BEHAVIOUR_CLAIM_IDS, behaviour_verdicts
from refusal_checks.calibration.tally import roles_table_lines, tally_worlds
from refusal_checks.stats.intervals import normal_quantile
from refusal_checks.models.synthetic import SyntheticBackend, World
from refusal_checks.calibration.worlds import Design

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
    return ablation_drop_offset(change, signal), t - normal_quantile(_phi(t) - change)


def ablation_drop_offset(drop: float, signal: float = 4.0) -> float:
    """The offset ``a`` added to a harmful decision under ablation that lowers its refusal
    rate by exactly ``drop`` (negative: raises it): ``Phi(signal - T) - Phi(signal - T + a)
    = drop``, as in :func:`exact_change_offsets`."""
    t = SyntheticBackend.REFUSAL_THRESHOLD
    return normal_quantile(_phi(signal - t) - drop) - (signal - t)


CONTROL_ABLATION, CONTROL_STEER = exact_change_offsets(direction_claims.CONTROL_MARGIN)
# ablation-lowers-category-refusal at its margin (a drop of 0 in some category): worlds
# whose categories' true drops sit LOWERS_EDGE above 0 (claim true) or one category's
# LOWERS_EDGE below it (claim false). Planted at signal 2 (refusal 0.5) with ablated
# decisions redrawn independently of the unedited ones: the most discordant pairs a rate of
# 0.5 allows, so each category's paired drop is as noisy as it can be (sd
# sqrt(0.5 / 32) ~ 0.125 at 32 prompts). 0.02 is a sixth of that sd: at the claim's sample
# sizes these worlds cannot be told from the margin itself, which is the point.
LOWERS_EDGE = 0.02
LOWERS_SIGNAL = 2.0
LOWERS_ABOVE = ablation_drop_offset(LOWERS_EDGE, LOWERS_SIGNAL)
LOWERS_BELOW = ablation_drop_offset(-LOWERS_EDGE, LOWERS_SIGNAL)
LOWERS = "ablation-lowers-category-refusal"
# Two knobs with cosine 0.5 (signal 2): population path deviation 0.151 ~ PATH_MARGIN,
# computed from the planted rates with KnobSweep.path_deviation; every direction moves
# over-refusal by >= 0.44 across the sweep, so the knob precondition holds.
BOUNDARY_KNOB_COS = 0.5
# Category directions with this cosine (signal 4) make ablation selective by exactly the
# claim's margin on average: mean selectivity over 12 worlds each 0.262 at cos 0.85,
# 0.171 at 0.88, 0.117 at 0.90 (directions estimated from train halves, as the claim does).
BOUNDARY_SELECTIVE_COS = 0.854
# The same for genre-matched directions (ablation-is-category-selective's own design): mean
# selectivity over 40 worlds each 0.273 at cos 0.862, 0.261 at 0.866, 0.248 at 0.87 (0.250
# with genre offsets 4, where the paper's directions read 0.637). Matched directions are
# more selective at one cosine: each subtracts its own twins, while every paper direction
# subtracts the same benign mean, whose sampling noise they all share.
BOUNDARY_MATCHED_SELECTIVE_COS = 0.87
SELECTIVE = "ablation-is-category-selective"
# Its paper's design (general-pool directions): a confound wherever genre is planted.
SELECTIVE_PAPER = "ablation-is-category-selective-paper-design"
BOTH_SELECTIVE = (SELECTIVE, SELECTIVE_PAPER)
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
    margin_for: tuple[str, ...] = ()  # true, but only just: REFUTED must stay <= 5%
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
        if claim in self.margin_for:
            return "margin"
        return None

    def claims(self) -> tuple[str, ...]:
        return tuple(c for c in self.CLAIM_IDS if self.role(c))


def behaviour_design(*, signal: float = 4.0, cos: float = 1.0, genre: float = 0.0,
                     **extras: Any) -> Design:
    """A behaviour world: the bundled categories and sizes (64 genre-matched twins each, as
    the bundled sets have; ablation-is-category-selective reads them), no genre offsets
    unless given, d_model 64."""
    return Design(World(cos=cos, signal=signal, genre=genre), names=BUNDLED_NAMES,
                  n_matched=64, **extras)


_ARDITI = ("ablation-bypasses-refusal", "addition-induces-refusal",
           "random-direction-does-not-bypass", "random-direction-does-not-induce")
BEHAVIOUR_SCENARIOS: dict[str, BehaviourScenario] = {s.name: s for s in [
    BehaviourScenario("one-direction", "one refusal direction (cos 1), signal 4: refuses ~98%",
                      behaviour_design(),
                      effect_for=_ARDITI + ("shared-knob", "ablation-lowers-category-refusal"),
                      null_for=BOTH_SELECTIVE),
    # At signal 2 the raw direction adds 2 to a benign decision: induced refusal ~0.5, a
    # boundary, so addition-induces-refusal is not an effect here.
    # Arditi et al.'s selection then finds no candidate whose raw addition lifts the mean
    # refusal score above 0 (induce < 0 everywhere), so the protocol selects nothing and
    # the claims about its direction have no direction to be judged on.
    BehaviourScenario("one-direction-weak", "one refusal direction, signal 2: refuses ~50% "
                      "(qwen-coder-0.5b: 56%)", behaviour_design(signal=2.0),
                      effect_for=("shared-knob", "ablation-lowers-category-refusal"),
                      null_for=BOTH_SELECTIVE,
                      confound_for=("ablation-bypasses-refusal",
                                    "random-direction-does-not-bypass",
                                    "random-direction-does-not-induce"),
                      confound_note="no candidate passes"),
    BehaviourScenario("distinct-directions", "cos 0.55 between categories, signal 4",
                      behaviour_design(cos=0.55),
                      effect_for=("random-direction-does-not-bypass",
                                  "random-direction-does-not-induce",
                                  "ablation-lowers-category-refusal") + BOTH_SELECTIVE),
    # The genre worlds: the paper's directions carry each category's genre (issue #26).
    BehaviourScenario("one-direction-genre", "one refusal direction, genre offsets 4 (as "
                      "large as the signal): each category's direction carries its genre",
                      behaviour_design(genre=4.0), null_for=(SELECTIVE,),
                      confound_for=(SELECTIVE_PAPER,), confound_note="paper's design"),
    BehaviourScenario("distinct-directions-genre", "cos 0.55, signal 4, genre offsets 4",
                      behaviour_design(cos=0.55, genre=4.0), effect_for=BOTH_SELECTIVE),
    BehaviourScenario("boundary-selective-genre", f"cos {BOUNDARY_MATCHED_SELECTIVE_COS}, "
                      "signal 4, genre offsets 4: genre-matched selectivity ~0.25, the margin "
                      "(the paper's directions ~0.64)",
                      behaviour_design(cos=BOUNDARY_MATCHED_SELECTIVE_COS, genre=4.0),
                      null_for=(SELECTIVE,), confound_for=(SELECTIVE_PAPER,),
                      confound_note="paper's design"),
    BehaviourScenario("twin-mismatch", "one refusal direction, genre offsets 4, twins 4 off "
                      "their category along an axis of its own", behaviour_design(
                          genre=4.0, twin_offset=4.0), null_for=(SELECTIVE,),
                      confound_for=(SELECTIVE_PAPER,), confound_note="paper's design"),
    BehaviourScenario("orthogonal-directions", "cos 0 between categories, signal 4: ablating "
                      "one category's direction leaves the others' refusal",
                      behaviour_design(cos=0.0), effect_for=BOTH_SELECTIVE),
    BehaviourScenario("boundary-selective", f"cos {BOUNDARY_SELECTIVE_COS}, signal 4: mean "
                      "selectivity of the paper's directions ~0.25, the margin (genre-matched "
                      "~0.32)", behaviour_design(cos=BOUNDARY_SELECTIVE_COS),
                      null_for=(SELECTIVE_PAPER,)),
    BehaviourScenario("boundary-selective-matched", f"cos {BOUNDARY_MATCHED_SELECTIVE_COS}, "
                      "signal 4: genre-matched selectivity ~0.25, the margin (paper's ~0.19)",
                      behaviour_design(cos=BOUNDARY_MATCHED_SELECTIVE_COS),
                      null_for=BOTH_SELECTIVE),
    # Arditi et al.'s selection (refusal_checks/measure/selection.py) in worlds with one right answer
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
                                "ablation-lowers-category-refusal") + BOTH_SELECTIVE),
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
    BehaviourScenario("drops-zero", f"signal {LOWERS_SIGNAL:g} (refuses ~50%); every "
                      "category's ablated decision redrawn: every drop exactly 0 (issue #26's "
                      "simulation, through the claim's code)", behaviour_design(
                          signal=LOWERS_SIGNAL, unablatable=len(BUNDLED_NAMES)),
                      null_for=(LOWERS,)),
    BehaviourScenario("drops-just-above", f"signal {LOWERS_SIGNAL:g} (refuses ~50%); every "
                      "category's ablated decision redrawn and moved by "
                      f"{LOWERS_ABOVE:.4f}: every drop exactly +{LOWERS_EDGE}",
                      behaviour_design(signal=LOWERS_SIGNAL, unablatable=len(BUNDLED_NAMES),
                                       unablatable_offset=LOWERS_ABOVE),
                      margin_for=(LOWERS,)),
    BehaviourScenario("one-drop-just-below", f"signal {LOWERS_SIGNAL:g}; one direction "
                      "lowers 10 categories' refusal (0.5 -> ~0.02); the last category's "
                      f"ablated decision redrawn and moved by {LOWERS_BELOW:+.4f}: its drop "
                      f"exactly -{LOWERS_EDGE}", behaviour_design(
                          signal=LOWERS_SIGNAL, unablatable=1,
                          unablatable_offset=LOWERS_BELOW), null_for=(LOWERS,)),
]}


def judge_behaviour_world(scenario: str | BehaviourScenario, seed: int,
                          claims: Sequence[str] | None = None,
                          ) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate). Top-level so processes can run it."""
    from refusal_checks.calibration.worlds import PlantedBackend, collection

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
    :class:`~refusal_checks.calibration.tally.Tally` (only the claims the scenario is a null or
    an effect for, and of those only ``only`` when given). World seeds are
    ``first_seed, first_seed + 1, ...`` in every scenario.
    """
    def claims(name: str) -> tuple[str, ...]:
        return tuple(c for c in BEHAVIOUR_SCENARIOS[name].claims()
                     if only is None or c in only)

    judge = judge_behaviour_world if only is None else partial(_judge_only, claims=only)
    return tally_worlds(judge, BEHAVIOUR_SCENARIOS, list(scenarios), worlds, claims=claims,
                        kind="behaviour", first_seed=first_seed, jobs=jobs, chunksize=8)


def behaviour_table_lines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """:func:`~refusal_checks.calibration.tally.roles_table_lines` of the behavioural
    claims (a confound row names why it has no goal)."""
    return roles_table_lines(results, BEHAVIOUR_CLAIM_IDS, BEHAVIOUR_SCENARIOS,
                             widths=(34, 22))
