"""Arditi et al.'s direction selection over layers and post-instruction positions.

Candidates are un-normalised differences in means of resid_pre at every (layer,
post-instruction position), built from the BUILD prompts (harmful ones the model refused,
harmless ones it answered). Each is scored on the VALIDATION prompts, disjoint from the
build prompts: bypass = mean refusal score (log-odds of a refusal opening) on harmful
prompts with the candidate ablated everywhere; induce = mean refusal score on harmless
prompts with the raw candidate added at its layer; KL = mean next-token
``KL(unedited || ablated)`` on harmless prompts. Candidates with induce < 0 or KL > 0.1 are
dropped, layers in the last 20% are never candidates, and the lowest bypass wins
(PAPER.md, Paper B, "Selection"; ties go to the more negative position, then the earlier
layer: the order of Arditi et al.'s loops). No candidate passing is a result, not an
error: :class:`Selection` then has no direction and says why, with every candidate's
numbers (:mod:`refusal_checks.verdicts.arditi` turns that into verdicts).

Filter order (the default, issue #24): a candidate failing induce can never be selected,
and induce is the cheap pass (a steer reuses the unedited blocks below its layer; bypass and
KL ablate every layer). So induce runs for every candidate first, bypass and KL only where
induce passes and for the NEAREST candidates closest to passing it. Every candidate that
can be selected then has all three scores, so the selection is the full search's. The
no-direction verdicts read bypass and KL over the computed candidates; see
:func:`select_direction` for when a pass is computed for every candidate, and
:mod:`refusal_checks.verdicts.arditi` for the argument. Passes not computed are NaN, named
with the reason in each :class:`Candidate`. ``order="full"`` computes everything.

Every pass of every candidate is one cache entry
(:class:`refusal_checks.measure.candidates.CandidateScores`), so an interrupted search
resumes at the first unfinished pass; the build activations are cached batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refusal_checks.cache.store import ArrayCache
from refusal_checks.core import cost
from refusal_checks.errors import RefusalChecksError
from refusal_checks.measure.candidates import PASSES, CandidateScores, build_activations, mean
from refusal_checks.models.backend import Backend
from refusal_checks.prompts.load import PromptSet

MAX_KL = 0.1  # Arditi et al.'s filter: KL <= 0.1 kept
MIN_INDUCE = 0.0  # induce < 0 dropped
LAST_LAYERS_EXCLUDED = 0.2  # "layer in the last 20%": layer >= int(0.8 n_layers)
# A candidate's ablation "bypasses" when at most this share of the validation harmful
# prompts keeps a refusal score > 0: the no-direction verdict's threshold
# (verdicts.single_direction.BYPASS_THRESHOLD; tests/unit/test_selection_order.py ties them).
BYPASS_SHARE = 0.5
ORDERS = ("filter", "full")
# Filter order: bypass and KL also for the 5 candidates nearest to passing induce: the 3
# that "no candidate passed" names (verdicts.arditi.filters_text) need all three scores, 2
# more make it likely that a computed one bypasses and one keeps KL <= 0.1, which settles
# the no-direction verdicts without every candidate. Each costs two all-layer ablated passes.
NEAREST = 5
NAMES = {"bypass": "bypass", "induce": "induce", "kl": "KL"}


def candidate_layers(n_layers: int) -> list[int]:
    """Layers outside the last 20%: ``0 .. int(0.8 n) - 1`` (Arditi et al.'s pruning rule)."""
    return list(range(max(1, int((1.0 - LAST_LAYERS_EXCLUDED) * n_layers))))


@dataclass(frozen=True)
class SelectionPrompts:
    """Build and validation prompts, each side a tuple of prompt sets (one per category:
    a synthetic world's activations depend on the category), plus how they were chosen."""

    build_harmful: tuple[PromptSet, ...]
    build_harmless: tuple[PromptSet, ...]
    val_harmful: tuple[PromptSet, ...]
    val_harmless: tuple[PromptSet, ...]
    counts: dict[str, int] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        def n(sets: tuple[PromptSet, ...]) -> int:
            return sum(len(s) for s in sets)

        return {"build_harmful": n(self.build_harmful), "build_harmless": n(self.build_harmless),
                "val_harmful": n(self.val_harmful), "val_harmless": n(self.val_harmless)}


@dataclass(frozen=True)
class Candidate:
    layer: int
    position: int
    bypass: float
    induce: float
    kl: float
    kept: bool
    why: str = ""  # the filters it failed
    skipped: tuple[str, ...] = ()  # passes not computed (filter order), their values NaN
    skip_reason: str = ""

    def text(self) -> str:
        def value(name: str, x: float, digits: int) -> str:
            key = name.lower()
            return (f"{name} not computed" if key in self.skipped
                    else f"{name} {x:.{digits}f}")

        return (f"layer {self.layer} position {self.position}: "
                f"{value('bypass', self.bypass, 2)}, induce {self.induce:.2f}, "
                f"{value('KL', self.kl, 3)}")


def judge_candidate(layer: int, position: int, bypass: float, induce: float,
                    divergence: float, skipped: Sequence[str] = (),
                    skip_reason: str = "") -> Candidate:
    """Apply Arditi et al.'s filters (induce >= 0, KL <= 0.1; NaN fails both; a KL that was
    not computed is not named as failed: such a candidate already fails induce)."""
    why = "; ".join(text for bad, text in [
        (not induce >= MIN_INDUCE, f"induce {induce:.2f} < {MIN_INDUCE:g}"),
        ("kl" not in skipped and not divergence <= MAX_KL,
         f"KL {divergence:.3f} > {MAX_KL}")] if bad)
    kept = not why and not skipped
    return Candidate(layer, position, float(bypass), float(induce), float(divergence),
                     kept, why, tuple(skipped), skip_reason)


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The kept candidate with the lowest bypass (ties: more negative position, then
    earlier layer); None when none is kept."""
    kept = [c for c in candidates if c.kept and np.isfinite(c.bypass)]
    return min(kept, key=lambda c: (c.bypass, c.position, c.layer), default=None)


@dataclass(frozen=True)
class Selection:
    """The chosen direction (None when no candidate passed) and every candidate's scores.

    ``bypass_scores`` / ``induce_scores`` / ``kl_values``: ``(candidate, prompt)`` per
    validation prompt, in the order of ``candidates``; a row is NaN where the pass was not
    computed (``Candidate.skipped``, filter order) or the candidate is a zero vector.
    ``order``: "filter" or "full"; ``nearest_k``: the filter order's nearest candidates;
    ``completed``: passes the filter order computed for every candidate (see
    :func:`select_direction`).
    """

    layer: int | None
    position: int | None
    direction: np.ndarray | None = field(repr=False)
    candidates: list[Candidate] = field(default_factory=list)
    layers: tuple[int, ...] = ()
    positions: tuple[int, ...] = ()
    restricted: bool = False
    sizes: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    reference_norm: float = float("nan")
    baseline: dict[str, float] = field(default_factory=dict)
    bypass_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    induce_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    kl_values: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    not_run: str = ""  # why no search ran (too few prompts), else ""
    order: str = "full"
    nearest_k: int = 0
    completed: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.direction is not None

    def computed(self, which: str) -> int:
        """How many candidates have pass ``which`` ("bypass", "induce", "kl") computed."""
        return sum(which not in c.skipped for c in self.candidates)

    def nearest(self, k: int = 3) -> list[Candidate]:
        """The ``k`` candidates closest to passing among those with every score computed
        (then the rest): fewest failed filters, then lowest bypass."""
        return sorted(self.candidates, key=lambda c: (
            len(c.skipped), 0 if not c.why else c.why.count(";") + 1,
            c.bypass if np.isfinite(c.bypass) else np.inf, c.position, c.layer))[:k]

    def order_text(self) -> str:
        """What the filter order computed ("" for the full search)."""
        if self.order == "full" or not self.candidates:
            return ""
        done = ", ".join(f"{NAMES[p]} for {self.computed(p)}" for p in ("bypass", "kl"))
        every = "".join(f"; {NAMES[p]} then for every candidate, as none of those "
                        + ("bypassed" if p == "bypass" else f"kept KL <= {MAX_KL}")
                        for p in self.completed)
        return (f"filter order: induce for all {len(self.candidates)}, {done} (where induce "
                f"passes, and the {self.nearest_k} nearest to passing){every}")

    def search_text(self) -> str:
        layers = _span(self.layers)
        positions = _span(self.positions)
        s = self.sizes
        scope = "restricted search, " if self.restricted else ""
        return (f"{scope}layers {layers} x post-instruction positions {positions}; build "
                f"{s.get('build_harmful', 0)}+{s.get('build_harmless', 0)}, validate "
                f"{s.get('val_harmful', 0)}+{s.get('val_harmless', 0)} (train halves, "
                f"filtered by baseline replies); induce >= {MIN_INDUCE:g}, KL <= {MAX_KL}, "
                "lowest bypass" + (f"; {self.order_text()}" if self.order_text() else ""))

    def outcome_text(self) -> str:
        if self.not_run:
            return f"not run: {self.not_run}"
        if not self.found:
            return f"no candidate of {len(self.candidates)} passed the filters"
        return f"selected layer {self.layer}, position {self.position}"

    def protocol(self) -> str:
        """``Arditi selection (...): selected layer L, position P`` for the reports."""
        return f"Arditi selection ({self.search_text()}): {self.outcome_text()}"

    def record(self) -> dict[str, Any]:
        """JSON-ready: the selected site, the search, every candidate (the heatmap's data)."""
        def number(x: float) -> float | None:
            return round(float(x), 4) if np.isfinite(x) else None

        return {
            "selected": ({"layer": self.layer, "position": self.position}
                         if self.found else None),
            "protocol": self.protocol(), "layers": list(self.layers),
            "positions": list(self.positions), "restricted": self.restricted,
            "filters": {"max_kl": MAX_KL, "min_induce": MIN_INDUCE,
                        "last_layers_excluded": LAST_LAYERS_EXCLUDED},
            "sizes": dict(self.sizes), "counts": dict(self.counts), "not_run": self.not_run,
            "order": self.order, "nearest_k": self.nearest_k, "completed": list(self.completed),
            "computed": {p: self.computed(p) for p in PASSES},
            "reference_norm": number(self.reference_norm),
            "baseline": {k: number(v) for k, v in self.baseline.items()},
            "candidates": [{"layer": c.layer, "position": c.position, "bypass": number(c.bypass),
                            "induce": number(c.induce), "kl": number(c.kl), "kept": c.kept,
                            "why": c.why, "not_computed": list(c.skipped),
                            "not_computed_why": c.skip_reason}
                           for c in self.candidates],
        }


def _span(values: Sequence[int]) -> str:
    values = sorted(values)
    if not values:
        return "none"
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ",".join(str(v) for v in values)


Site = tuple[int, int]  # (layer index, position index) into a search's layers and positions


def ablation_sites(induce: dict[Site, float], layers: Sequence[int], positions: Sequence[int],
                   nearest: int) -> list[Site]:
    """The filter order's candidates for bypass and KL: every one whose induce passes, and
    the ``nearest`` failing ones with the highest induce (ties: the more negative position,
    then the earlier layer), in the order of ``induce``."""
    failing = sorted((s for s, v in induce.items() if np.isfinite(v) and not v >= MIN_INDUCE),
                     key=lambda s: (-induce[s], positions[s[1]], layers[s[0]]))
    chosen = {s for s, v in induce.items() if v >= MIN_INDUCE} | set(failing[:nearest])
    return [s for s in induce if s in chosen]


def bypasses(scores: np.ndarray) -> bool:
    """At most BYPASS_SHARE of the harmful prompts keep a refusal score > 0."""
    scores = np.asarray(scores, np.float64)
    return bool(np.isfinite(scores).all() and np.mean(scores > 0) <= BYPASS_SHARE)


def keeps_kl(values: np.ndarray) -> bool:
    """Mean KL within Arditi et al.'s filter (<= MAX_KL)."""
    return mean(values) <= MAX_KL


def select_direction(
    backend: Backend,
    prompts: SelectionPrompts,
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    cache: ArrayCache | None = None,
    token_ids: Sequence[int] | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
    order: str = "filter",
    nearest: int = NEAREST,
) -> Selection:
    """Run Arditi et al.'s search; see the module docstring.

    Filter order: induce for every candidate; bypass and KL for those passing induce and
    the ``nearest`` closest to it (:func:`ablation_sites`). When then no candidate is kept,
    bypass is computed for every candidate unless a computed one already bypasses
    (:func:`bypasses`), and KL unless a computed one keeps KL <= 0.1: the no-direction
    verdicts read the best over candidates, and only these computations can make them
    REFUTED. The selected candidate is always the full search's.

    Args:
        backend: The model (needs ``last_logprobs`` and ``refusal_token_ids``).
        prompts: Build and validation prompts (:func:`refusal_checks.measure.arditi.selection_prompts`).
        layers: Candidate layers (default :func:`candidate_layers`; a layer in the last
            20% is refused).
        positions: Negative offsets (default: the backend's post-instruction positions).
        cache: Where build activations and per-candidate scores are cached.
        token_ids: Refusal tokens; default ``backend.refusal_token_ids()``.
        progress: Called with (steps done, steps planned) after each candidate's passes;
            the filter order plans more steps once it knows which candidates need them.
        order: "filter" (default) or "full" (every pass of every candidate).
        nearest: Filter order: failing candidates nearest to induce that still get bypass
            and KL.
    """
    if order not in ORDERS or nearest < 0:
        raise RefusalChecksError(f"selection order {order!r} with {nearest} nearest is not "
                                 f"known; use one of {', '.join(ORDERS)} and nearest >= 0.")
    default_layers = candidate_layers(backend.n_layers)
    layers = default_layers if layers is None else sorted(set(layers))
    outside = [layer for layer in layers if layer not in default_layers]
    if outside:
        raise RefusalChecksError(
            f"selection layers {outside} are not candidates for {backend.name}: Arditi et al. "
            f"never take a direction from the last 20% of layers; use layers in "
            f"0..{default_layers[-1]}.")
    texts = [t for s in prompts.build_harmful + prompts.build_harmless for t in s.texts]
    positions = (sorted(backend.post_instruction_positions(texts)) if positions is None
                 else sorted(set(positions)))
    restricted = layers != default_layers or positions != sorted(
        backend.post_instruction_positions(texts))
    token_ids = sorted(int(t) for t in (token_ids or backend.refusal_token_ids()))
    acts_h = build_activations(backend, prompts.build_harmful, layers, positions, cache,
                               batch_size)
    acts_b = build_activations(backend, prompts.build_harmless, layers, positions, cache,
                               batch_size)
    means = acts_h.astype(np.float64).mean(axis=0) - acts_b.astype(np.float64).mean(axis=0)
    scores = CandidateScores(backend, prompts.val_harmful, prompts.val_harmless, token_ids,
                             cache, batch_size)
    sites = [(i, j) for j in range(len(positions)) for i in range(len(layers))]  # Arditi's order
    live = [s for s in sites if np.linalg.norm(means[s]) > 0]
    table: dict[str, dict[Site, np.ndarray]] = {p: {} for p in PASSES}
    steps = {"done": 0, "total": len(sites)}

    def run(passes: Sequence[str], chosen: Sequence[Site]) -> None:
        for site in chosen:
            for which in passes if site in live else ():
                if site not in table[which]:
                    table[which][site] = scores.score(which, layers[site[0]], means[site])
            steps["done"] += 1
            if progress is not None:
                progress(steps["done"], steps["total"])

    completed: tuple[str, ...] = ()
    if order == "full":
        run(PASSES, sites)
    else:
        run(("induce",), sites)
        ablated = ablation_sites({s: mean(table["induce"][s]) for s in live}, layers,
                                 positions, nearest)
        steps["total"] += len(ablated)
        run(("bypass", "kl"), ablated)
        if choose(_judged(table, live, layers, positions, nearest)) is None:
            for which, settles in (("bypass", bypasses), ("kl", keeps_kl)):
                rest = [s for s in live if s not in table[which]]
                if rest and not any(settles(v) for v in table[which].values()):
                    steps["total"] += len(rest)
                    run((which,), rest)
                    completed += (which,)
    candidates = _judged(table, live, layers, positions, nearest)
    cost.note(prompts_skipped=sum(scores.size(p) for c in candidates for p in c.skipped))
    rows = {p: np.array([table[p].get(s, np.full(scores.size(p), np.nan)) for s in _grid(
        layers, positions)], np.float64).reshape(len(candidates), scores.size(p))
        for p in PASSES}
    best = choose(candidates)
    chosen = None if best is None else (layers.index(best.layer), positions.index(best.position))
    reference = (float(np.linalg.norm(acts_b[:, chosen[0], chosen[1]].astype(np.float64),
                                      axis=1).mean()) if chosen else float("nan"))
    return Selection(
        best.layer if best else None, best.position if best else None,
        means[chosen].copy() if chosen else None, candidates, tuple(layers), tuple(positions),
        restricted, prompts.sizes(), dict(prompts.counts), reference, scores.baseline(),
        rows["bypass"], rows["induce"], rows["kl"], order=order,
        nearest_k=nearest if order == "filter" else 0, completed=completed)


def _grid(layers: Sequence[int], positions: Sequence[int]) -> list[Site]:
    """Candidate sites in the table's order: layer by layer, positions within."""
    return [(i, j) for i in range(len(layers)) for j in range(len(positions))]


def _judged(table: dict[str, dict[Site, np.ndarray]], live: Sequence[Site],
            layers: Sequence[int], positions: Sequence[int], nearest: int) -> list[Candidate]:
    """Every candidate judged on what ``table`` holds; a live candidate's missing passes are
    named (NaN values), a zero vector's are NaN as in the full search."""
    out = []
    for site in _grid(layers, positions):
        values = [mean(table[p][site]) if site in table[p] else float("nan") for p in PASSES]
        skipped = tuple(p for p in PASSES if site in live and site not in table[p])
        reason = (f"induce fails and {nearest} candidates are nearer to passing it "
                  "(filter order)" if skipped else "")
        out.append(judge_candidate(layers[site[0]], positions[site[1]], *values,
                                   skipped=skipped, skip_reason=reason))
    return out
