"""A claim's verdict outside pytest: activations + refusal counts in, Verdict out.

Each function here computes exactly what the claim of the same id in
``claims/test_geometry.py`` computes from its fixtures: the same study
(``fixtures/directions.py``: :func:`~refusal_checks.study.study_directions` against the
general benign pool, or against the genre-matched controls) and the same verdict function
(:mod:`refusal_checks.geometry_claims`). Defaults are the claims' defaults
(``--refusal-seed 0``, ``--refusal-bootstrap 500``). That lets a planted world
(:mod:`refusal_checks.worlds`) be judged thousands of times to measure how often a claim
is SUPPORTED when it is false (calibration/run.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from refusal_checks import geometry_claims
from refusal_checks.activations import LayerView
from refusal_checks.behaviour import RefusalBehaviour, as_behaviour
from refusal_checks.study import DirectionStudy, study_directions
from refusal_checks.verdict import Verdict

# The claims' option defaults (refusal_checks/plugin.py: --refusal-seed, --refusal-bootstrap).
DEFAULT_SEED = 0
DEFAULT_BOOTSTRAP = 500

# Names of the two benign controls, as fixtures/directions.py labels its studies.
GENERAL = "general benign pool"
MATCHED = "genre-matched benign"

# claim id -> (which study it reads, the verdict function).
CLAIMS: dict[str, tuple[str, Callable[[DirectionStudy, RefusalBehaviour], Verdict]]] = {
    "stable-within-category": (GENERAL, geometry_claims.stable_within_category),
    "distinct-directions": (GENERAL, geometry_claims.distinct_directions),
    "more-than-one-direction": (MATCHED, geometry_claims.more_than_one_direction),
    "distinct-under-matched-control": (MATCHED, geometry_claims.distinct_under_matched_control),
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


def claim_verdicts(acts: LayerView | Mapping[str, Any], behaviour: Any,
                   claims: Iterable[str] = CLAIM_IDS, *, seed: int = DEFAULT_SEED,
                   n_boot: int = DEFAULT_BOOTSTRAP) -> dict[str, Verdict]:
    """Verdicts of several claims, building each study once.

    Args:
        acts: Activations at the claims' layer, as the ``layer_activations`` fixture holds.
        behaviour: A :class:`RefusalBehaviour` or anything with ``refused, n,
            benign_refused, benign_n``.
        claims: Claim ids (see ``CLAIM_IDS``).
        seed: ``--refusal-seed``.
        n_boot: ``--refusal-bootstrap``.
    """
    wanted = list(claims)
    unknown = [c for c in wanted if c not in CLAIMS]
    if unknown:
        raise ValueError(f"unknown claim ids {unknown}. Known: {', '.join(CLAIM_IDS)}.")
    counts = as_behaviour(behaviour)
    studies: dict[str, DirectionStudy] = {}
    out = {}
    for claim in wanted:
        control, judge = CLAIMS[claim]
        if control not in studies:
            studies[control] = study(acts, control, seed=seed, n_boot=n_boot)
        out[claim] = judge(studies[control], counts)
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
