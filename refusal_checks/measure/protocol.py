"""The behavioural claims' measurement protocol: probe sizes, reply length, sweep grid.

One home for what ``fixtures/behaviour.py`` measures under pytest and
:class:`refusal_checks.calibration.measurements.BehaviourMeasurements` measures in
known-answer worlds, so a claim and its calibration cannot drift apart. Probes are heads
of the test halves (deterministic sha256 halves, ``PromptSet.split``) and directions come
from the train halves, so no claim judges an intervention on the prompts its direction
was fitted to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# Probe sizes are the protocol's defaults (their reasons are there).
from refusal_checks.core.defaults import (ARDITI_BENIGN, ARDITI_PER_CATEGORY, PROBE_BENIGN,
                                          PROBE_PER_CATEGORY)

# Arditi et al. build one refusal direction from harmful vs harmless instructions; our
# safety-type categories play the harmful side (PAPER.md, Paper B, "Data").
HARMFUL_CATEGORIES = ("safety_core", "crime_assistance", "hate_speech", "safety_concerns")
# Greedy reply length the judge reads on these probes. Refusal openings sit in the first
# 16 tokens (behaviour_control.REPLY_TOKENS, which halves this because it asks every
# should-refuse prompt); on probes this small twice that costs little.
REPLY_TOKENS = 32
# Relative steering strengths (multiples of the mean residual norm at the layer). The
# paper's raw alphas do not transfer across models (PAPER.md A.3); relative strengths do.
# The grid spans "barely moves" to "refuses nearly everything" on the embedded 0.5B model.
SWEEP_STRENGTHS = (0.1, 0.2, 0.35, 0.5)


def harmful_categories(collection: Any) -> list[str]:
    """HARMFUL_CATEGORIES present in ``collection``, or every category when none is."""
    chosen = [c for c in HARMFUL_CATEGORIES if c in collection.categories]
    return chosen or list(collection.categories)


def category_probe(collection: Any) -> tuple[dict[str, Any], Any]:
    """(category -> held-out refuse prompts, held-out benign prompts) of the category claims:
    PROBE_PER_CATEGORY per category, PROBE_BENIGN benign (stratified heads of test halves)."""
    return ({name: c.refuse.split("test").head(PROBE_PER_CATEGORY)
             for name, c in collection.categories.items()},
            collection.benign.split("test").head(PROBE_BENIGN))


def arditi_probe(collection: Any, harmful: Sequence[str]) -> tuple[dict[str, Any], Any]:
    """The single-direction claims' held-out probe: ARDITI_PER_CATEGORY per harmful
    category, ARDITI_BENIGN benign."""
    return ({name: collection.categories[name].refuse.split("test").head(ARDITI_PER_CATEGORY)
             for name in harmful},
            collection.benign.split("test").head(ARDITI_BENIGN))


def staged_category_probe(collection: Any) -> Any:
    """The category claims' probe in stages (:mod:`refusal_checks.measure.staged`): stage 1 is
    :func:`category_probe`, then 16 and 32 per category and 64 benign, as far as the
    held-out halves reach."""
    from refusal_checks.measure.staged import StagedProbe

    return StagedProbe.build({name: c.refuse.split("test")
                              for name, c in collection.categories.items()},
                             collection.benign.split("test"), PROBE_PER_CATEGORY,
                             PROBE_BENIGN)


def staged_arditi_probe(collection: Any, harmful: Sequence[str]) -> Any:
    """The single-direction claims' probe in stages: stage 1 is :func:`arditi_probe`."""
    from refusal_checks.measure.staged import StagedProbe

    return StagedProbe.build({name: collection.categories[name].refuse.split("test")
                              for name in harmful},
                             collection.benign.split("test"), ARDITI_PER_CATEGORY,
                             ARDITI_BENIGN)


def probe_agreement(score: Callable[[Any], np.ndarray], refused: Callable[[Any], np.ndarray],
                    sets: Sequence[Any]) -> dict[str, Any]:
    """How often the cheap score (> 0) agrees with the judged replies on the unsteered
    prompt ``sets`` (the ``score_agreement`` fixture)."""
    from refusal_checks.models.scoring import agreement

    by_score = np.concatenate([score(p) > 0 for p in sets])
    by_judge = np.concatenate([refused(p) for p in sets])
    return agreement(by_score, by_judge)


def train_rows(prompts: Any) -> np.ndarray:
    """Row indices, in ``prompts``, of its train half."""
    index = {text: i for i, text in enumerate(prompts.texts)}
    return np.array([index[t] for t in prompts.split("train").texts], dtype=int)


def train_directions(refuse: Mapping[str, np.ndarray], benign: np.ndarray,
                     collection: Any) -> dict[str, np.ndarray]:
    """Raw diff-in-means direction per category, ``(d_model,)``: the category's train half
    minus the benign pool's train half (activations ``refuse``: category -> (prompt,
    d_model), ``benign``: (prompt, d_model), rows in ``collection``'s order)."""
    from refusal_checks.stats.geometry import diff_in_means

    pool = benign[train_rows(collection.benign)]
    return {name: diff_in_means(refuse[name][train_rows(c.refuse)], pool)
            for name, c in collection.categories.items()}


def matched_train_directions(refuse: Mapping[str, np.ndarray], matched: Mapping[str, np.ndarray],
                             collection: Any) -> dict[str, np.ndarray]:
    """Genre-matched diff-in-means direction per category with matched rows, ``(d_model,)``:
    the category's train half minus its own genre-matched benign prompts' train half, so the
    category's genre cancels (activations ``refuse`` / ``matched``: category -> (prompt,
    d_model), rows in ``collection``'s order). Categories without matched rows are left out.
    """
    from refusal_checks.stats.geometry import diff_in_means

    return {name: diff_in_means(refuse[name][train_rows(c.refuse)],
                                matched[name][train_rows(c.matched)])
            for name, c in collection.categories.items()
            if c.matched is not None and name in matched}
