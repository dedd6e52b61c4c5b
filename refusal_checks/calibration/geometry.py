"""A claim's verdict outside pytest: activations + refusal counts in, Verdict out.

Each function here computes exactly what the claim of the same id in
``claims/test_geometry.py`` computes from its fixtures: the same study
(``fixtures/directions.py``: :func:`~refusal_checks.measure.study.study_directions` against the
general benign pool, or against the genre-matched controls) and the same verdict function
(:mod:`refusal_checks.verdicts.geometry`). Defaults are the claims' defaults
(``--refusal-seed 0``, ``--refusal-bootstrap 500``). That lets a planted world
(:mod:`refusal_checks.calibration.worlds`) be judged thousands of times to measure how often a claim
is SUPPORTED when it is false (calibration/run.py; the worlds are
:mod:`refusal_checks.calibration.known_answers`, the counting :mod:`refusal_checks.calibration.tally`).

The behavioural claims' counterpart is :mod:`refusal_checks.calibration.measurements`
(their known-answer worlds: :mod:`refusal_checks.calibration.behaviour`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from refusal_checks.verdicts import geometry as geometry_claims

from refusal_checks.verdicts import shared_core
from refusal_checks.measure.activations import LayerView
from refusal_checks.measure.behaviour import as_behaviour
from refusal_checks.measure.behaviour_control import CONTROL as BEHAVIOUR_CONTROL
from refusal_checks.measure.behaviour_control import BehaviourDirections, behaviour_directions
from refusal_checks.measure.study import DirectionStudy, study_directions
from refusal_checks.stats.verdict import Verdict

# The claims' option defaults (--refusal-seed, --refusal-bootstrap), from one place.
from refusal_checks.core.defaults import BOOTSTRAP as DEFAULT_BOOTSTRAP  # noqa: E402
from refusal_checks.core.defaults import SEED as DEFAULT_SEED  # noqa: E402


# Names of the three controls, as fixtures/directions.py labels its studies.
GENERAL = "general benign pool"
MATCHED = "genre-matched benign"
BEHAVIOUR = BEHAVIOUR_CONTROL

# claim id -> (which study it reads, the verdict function). The behaviour control's
# "study" is a BehaviourDirections (counts + study), built from judged replies.
# distinct-directions reads three (its genre controls and the paper's design): its entry
# names the general pool, and claim_verdicts hands it the others as its test does.
DISTINCT = "distinct-directions"
CLAIMS: dict[str, tuple[str, Callable[..., Verdict]]] = {
    "stable-within-category": (GENERAL, geometry_claims.stable_within_category),
    DISTINCT: (GENERAL, geometry_claims.distinct_directions),
    "distinct-directions-paper-design": (GENERAL,
                                         geometry_claims.distinct_directions_paper_design),
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


def matched_refuse(acts: LayerView | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The categories that have a genre-matched benign control: category -> activations."""
    view = _view(acts)
    return {c: a for c, a in view.refuse.items() if c in view.matched}


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
    refuse = matched_refuse(view)
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
    from refusal_checks.judges.base import SubstringJudge

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
            (:func:`refusal_checks.calibration.worlds.refusals`); needed by the behaviour control, and
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
        if claim == DISTINCT:  # as the claim's test: the paper's design and the controls
            matched = get(MATCHED) if len(matched_refuse(view)) >= 2 else None
            out[claim] = judge(get(control), matched,
                               get(BEHAVIOUR) if refused is not None else None, counts)
        else:
            out[claim] = judge(get(control), counts)
    return out


def stable_within_category(acts: LayerView | Mapping[str, Any], behaviour: Any, *,
                           seed: int = DEFAULT_SEED, n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "stable-within-category" (general benign pool)."""
    return claim_verdicts(acts, behaviour, ["stable-within-category"], seed=seed,
                          n_boot=n_boot)["stable-within-category"]


def distinct_directions(acts: LayerView | Mapping[str, Any], behaviour: Any,
                        refused: Mapping[str, Any] | None = None, *, seed: int = DEFAULT_SEED,
                        n_boot: int = DEFAULT_BOOTSTRAP) -> Verdict:
    """Verdict of "distinct-directions" (its genre controls, the paper's design agreeing)."""
    return claim_verdicts(acts, behaviour, [DISTINCT], seed=seed, n_boot=n_boot,
                          refused=refused)[DISTINCT]


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
