"""Known-answer worlds for the style claims (claims/test_style.py), judged outside pytest.

:class:`StyleMeasurements` measures a backend exactly as ``fixtures/style.py`` does: the
shared probe (the first harmful category's 8 held-out probe prompts and 16 held-out benign
ones), greedy 32-token replies judged by the substring judge, the rate-matched strength
search (:func:`refusal_checks.measure.style_steering.rate_matched_replies`), sentence embedding
plus lexical features (:func:`refusal_checks.measure.style_features.style_features`), the style
test with 500 permutations and 500 bootstrap replicates, the random-half negative
control, and the claims' verdict functions with their preconditions
(``refusal_behaviour.refuses()``).
:func:`style_verdicts` applies the verdict logic of claims/test_style.py to it.

``STYLE_SCENARIOS`` are planted worlds where each style claim's answer is known
(``calibration/run.py --style``; calibration/README.md). The encoder is the real
all-MiniLM-L6-v2; :class:`MemoEncoder` remembers each text's embedding across worlds
(planted refusals repeat a few dozen distinct strings), so hundreds of worlds are cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from refusal_checks.calibration.behaviour import BUNDLED_NAMES, BehaviourScenario
from refusal_checks.calibration.measurements import BehaviourMeasurements
from refusal_checks.measure.protocol import REPLY_TOKENS, train_rows
from refusal_checks.calibration.geometry import DEFAULT_SEED
from refusal_checks.calibration.tally import roles_table_lines, tally_worlds
from refusal_checks.verdicts.style import style_control, style_data
from refusal_checks.measure.style_steering import (
    control_categories,
    control_halves,
    fixed_strength_replies,
    held_out_matched_replies,
    style_probes,
)
from refusal_checks.verdicts.style_claims import STYLE_CLAIM_IDS, style_claim
from refusal_checks.models.synthetic import SyntheticBackend, World
from refusal_checks.stats.verdict import Verdict
from refusal_checks.calibration.worlds import Design



class MemoEncoder:
    """Wraps a sentence encoder; each (text, max_tokens) is encoded once.

    Embeddings are computed for the texts not seen before, in one call, so a text's vector
    may differ from an unmemoised batch's in the last float32 bits (padding of its batch).
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._memo: dict[tuple[str, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def encode(self, texts: Sequence[str], max_tokens: int) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (t, max_tokens) not in self._memo]
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing,
                                                                 max_tokens=max_tokens)):
                self._memo[(text, max_tokens)] = vector
        if not texts:
            return np.zeros((0, 0), np.float32)
        return np.stack([self._memo[(t, max_tokens)] for t in texts])


_ENCODER: MemoEncoder | None = None


def default_encoder() -> MemoEncoder:
    """The style fixtures' encoder (all-MiniLM-L6-v2, verified weights), memoised, one per
    process."""
    global _ENCODER
    if _ENCODER is None:
        from refusal_checks.judges.embedding import MiniLMEncoder, model_folder, verify_weights

        folder = model_folder()
        verify_weights(folder)
        _ENCODER = MemoEncoder(MiniLMEncoder(folder))
    return _ENCODER


class StyleMeasurements:
    """What the fixtures of ``fixtures/style.py`` hold, for one backend, without caches.

    ``compact`` (default) runs the style tests on
    :func:`refusal_checks.measure.style_features.span_coordinates` of the features: the same
    distances up to rounding, several times faster.
    """

    def __init__(self, backend: Any, collection: Any, encoder: Any, *,
                 seed: int = DEFAULT_SEED, compact: bool = True) -> None:
        from refusal_checks.models.interventions import steer

        self.base = BehaviourMeasurements(backend, collection, seed=seed)
        self.seed, self.encoder = seed, encoder
        m = self.base
        harmful = collection.categories[m.harmful_categories[0]].refuse.split("test")
        self.search, self.probe = style_probes(harmful, collection.benign.split("test"))
        self.prompts = [text for p in self.probe for text in p.texts]

        def make(vector: np.ndarray, strength: float, name: str) -> Any:
            return steer(vector, strength, m.layer, m.reference_norm, name)

        self.steered = held_out_matched_replies(
            lambda edit: self.answer(edit, self.search), self.answer, m.train_directions, make,
            search_prompts=[t for p in self.search for t in p.texts], prompts=self.prompts)
        self.data = style_data(self.steered, encoder, seed=seed, compact=compact)
        self.categories = control_categories(self.steered)
        rows = {c: train_rows(collection.categories[c].refuse) for c in self.categories}
        self.halves, strengths = control_halves(
            self.steered, self.categories, m.acts.refuse, rows, m.acts.benign,
            train_rows(collection.benign), seed=seed)
        self.half_replies = fixed_strength_replies(self.answer, self.halves, strengths,
                                                   make, prompts=self.prompts)
        self.control = style_control(self.half_replies, self.categories, encoder,
                                     seed=seed, compact=compact)

    def answer(self, intervention: Any = None,
               probe: list[Any] | None = None) -> tuple[np.ndarray, list[str]]:
        """(refused? per prompt, replies) on the compared probe (or ``probe``), as the
        fixture's ``answer``."""
        from refusal_checks.measure.effects import judged

        refused, texts = [], []
        for prompts in self.probe if probe is None else probe:
            r, t = judged(self.base.backend, prompts, self.base.judge, intervention, None,
                          max_new_tokens=REPLY_TOKENS)
            refused.append(np.asarray(r, bool))
            texts += list(t)
        return np.concatenate(refused), texts


def style_verdicts(measured: StyleMeasurements,
                   claims: Iterable[str] = STYLE_CLAIM_IDS) -> dict[str, Verdict]:
    """Verdicts of the style claims, through the claims' own
    :func:`refusal_checks.verdicts.style_claims.style_claim`."""
    wanted = list(claims)
    unknown = [c for c in wanted if c not in STYLE_CLAIM_IDS]
    if unknown:
        raise ValueError(f"unknown style claim ids {unknown}. Known: "
                         f"{', '.join(STYLE_CLAIM_IDS)}.")
    refuses = measured.base.behaviour.refuses()
    return {claim: style_claim(claim, data=measured.data, steered=measured.steered,
                               control=measured.control, refuses=refuses, seed=measured.seed)
            for claim in wanted}


# --- Known-answer worlds -------------------------------------------------------------

# Boundary style share: the planted share of steered refusals with their direction's
# marker at which the style test's mean accuracy gain over worlds is the margin, 0.10
# (0.25: 0.095 over 40 worlds; 0.26: 0.105 over 200; grid in calibration/README.md).
BOUNDARY_STYLE = 0.255
# AI-identity categories refuse with moral/legal markers and the moral categories with
# AI-identity ones: the paper's families reversed.
SWAPPED_MARKERS = (
    ("humanizing", SyntheticBackend.PAPER_MARKERS["safety_core"]),
    ("unsupported", SyntheticBackend.PAPER_MARKERS["crime_assistance"]),
    ("indeterminate", SyntheticBackend.PAPER_MARKERS["hate_speech"]),
    ("safety_core", SyntheticBackend.PAPER_MARKERS["humanizing"]),
    ("crime_assistance", SyntheticBackend.PAPER_MARKERS["unsupported"]),
    ("hate_speech", SyntheticBackend.PAPER_MARKERS["indeterminate"]),
)


def style_design(*, style_share: float = 1.0, cos: float = 0.5, signal: float = 4.0,
                 **extras: Any) -> Design:
    """A style world: the bundled categories (``BUNDLED_NAMES``: the paper's family names
    exist) and sizes (the shared probe has its real size), cos 0.5 between planted directions,
    no genre offsets, d_model 64, ``style_share`` of steered refusals with the marker of
    the planted direction nearest the steering vector."""
    return Design(World(cos=cos, signal=signal, genre=0.0, style=style_share),
                  names=BUNDLED_NAMES, n_matched=0, **extras)


@dataclass(frozen=True)
class StyleScenario(BehaviourScenario):
    """A family of planted worlds for the style claims (see known_answers.Scenario)."""

    CLAIM_IDS: ClassVar[tuple[str, ...]] = STYLE_CLAIM_IDS


_CONTROL = ("style-negative-control",)
STYLE_SCENARIOS: dict[str, StyleScenario] = {s.name: s for s in [
    StyleScenario("styled", "cos 0.5, style 1: every steered refusal carries its direction's "
                  "marker; the paper's family markers on the paper's names",
                  style_design(), effect_for=STYLE_CLAIM_IDS),
    StyleScenario("plain", "cos 0.5, style 0: every direction refuses alike",
                  style_design(style_share=0.0),
                  null_for=("style-differs-by-direction", "style-not-rate", "style-families"),
                  effect_for=("style-rate-matched",) + _CONTROL),
    StyleScenario("boundary-style", f"cos 0.5, style {BOUNDARY_STYLE}: mean accuracy gain "
                  "at the 0.10 margin", style_design(style_share=BOUNDARY_STYLE),
                  null_for=("style-differs-by-direction", "style-not-rate"),
                  effect_for=_CONTROL),
    StyleScenario("swapped-families", "style 1, AI-identity categories carry moral markers "
                  "and moral categories AI-identity ones",
                  style_design(markers=SWAPPED_MARKERS),
                  null_for=("style-families",),
                  effect_for=("style-differs-by-direction",) + _CONTROL),
    StyleScenario("one-unreachable", "style 1; humanizing's planted direction is orthogonal "
                  "to the probe's readout: no strength reaches the target rate",
                  style_design(unreachable=("humanizing",)),
                  null_for=("style-rate-matched", "style-not-rate"),
                  effect_for=("style-differs-by-direction",) + _CONTROL),
    StyleScenario("never-refuses", "signal 0: the model never refuses",
                  style_design(signal=0.0), null_for=STYLE_CLAIM_IDS),
]}


def judge_style_world(scenario: str | StyleScenario, seed: int,
                      claims: Sequence[str] | None = None, encoder: Any = None,
                      ) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate). Top-level so processes can run it.

    Every style claim is judged (``claims`` None); the scenario's roles say which count.
    """
    from refusal_checks.calibration.worlds import PlantedBackend, collection

    chosen = STYLE_SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    design = chosen.design.with_seed(seed)
    measured = StyleMeasurements(PlantedBackend(design), collection(design),
                                 encoder if encoder is not None else default_encoder())
    verdicts = style_verdicts(measured, claims if claims is not None else STYLE_CLAIM_IDS)
    return {claim: (v.outcome.value, v.estimate) for claim, v in verdicts.items()}


def run_style(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1, jobs: int = 1,
              encoder: Any = None) -> dict[str, dict[str, Any]]:
    """Judge ``worlds`` seeded replicates of each style scenario -> scenario -> claim ->
    :class:`~refusal_checks.calibration.tally.Tally` (every style claim; the table marks the
    roles). World seeds are ``first_seed, first_seed + 1, ...`` in every scenario.
    """
    return tally_worlds(judge_style_world, STYLE_SCENARIOS, list(scenarios), worlds,
                        claims=lambda name: STYLE_CLAIM_IDS, kind="style",
                        first_seed=first_seed, jobs=jobs, chunksize=4,
                        serial=lambda name, seed: judge_style_world(name, seed, encoder=encoder))


def style_table_lines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """:func:`~refusal_checks.calibration.tally.roles_table_lines` of the style claims."""
    return roles_table_lines(results, STYLE_CLAIM_IDS, STYLE_SCENARIOS, widths=(28, 17))
