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
numbers (:mod:`refusal_checks.measure.arditi` turns that into verdicts).

Every candidate's per-prompt scores are one cache entry keyed by the model, the validation
prompts' inputs and the candidate's vector, so an interrupted search resumes at the first
unfinished candidate; the build activations are cached batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refusal_checks.core import cost
from refusal_checks.measure.activations import activation_key
from refusal_checks.models.backend import Backend
from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.errors import RefusalChecksError
from refusal_checks.models.interventions import Ablate, Intervention, Steer
from refusal_checks.prompts.load import PromptSet
from refusal_checks.models.scoring import kl_divergence, refusal_score

MAX_KL = 0.1  # Arditi et al.'s filter: KL <= 0.1 kept
MIN_INDUCE = 0.0  # induce < 0 dropped
LAST_LAYERS_EXCLUDED = 0.2  # "layer in the last 20%": layer >= int(0.8 n_layers)


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
    why: str = ""

    def text(self) -> str:
        return (f"layer {self.layer} position {self.position}: bypass {self.bypass:.2f}, "
                f"induce {self.induce:.2f}, KL {self.kl:.3f}")


def judge_candidate(layer: int, position: int, bypass: float, induce: float,
                    divergence: float) -> Candidate:
    """Apply Arditi et al.'s filters (induce >= 0, KL <= 0.1; NaN fails both)."""
    why = "; ".join(text for bad, text in [
        (not induce >= MIN_INDUCE, f"induce {induce:.2f} < {MIN_INDUCE:g}"),
        (not divergence <= MAX_KL, f"KL {divergence:.3f} > {MAX_KL}")] if bad)
    return Candidate(layer, position, float(bypass), float(induce), float(divergence),
                     not why, why)


def choose(candidates: Sequence[Candidate]) -> Candidate | None:
    """The kept candidate with the lowest bypass (ties: more negative position, then
    earlier layer); None when none is kept."""
    kept = [c for c in candidates if c.kept and np.isfinite(c.bypass)]
    return min(kept, key=lambda c: (c.bypass, c.position, c.layer), default=None)


@dataclass(frozen=True)
class Selection:
    """The chosen direction (None when no candidate passed) and every candidate's scores.

    ``bypass_scores`` / ``induce_scores`` / ``kl_values``: ``(candidate, prompt)`` per
    validation prompt, in the order of ``candidates``.
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

    @property
    def found(self) -> bool:
        return self.direction is not None

    def nearest(self, k: int = 3) -> list[Candidate]:
        """The ``k`` candidates closest to passing: fewest failed filters, then lowest bypass."""
        return sorted(self.candidates, key=lambda c: (
            0 if not c.why else c.why.count(";") + 1,
            c.bypass if np.isfinite(c.bypass) else np.inf, c.position, c.layer))[:k]

    def search_text(self) -> str:
        layers = _span(self.layers)
        positions = _span(self.positions)
        s = self.sizes
        scope = "restricted search, " if self.restricted else ""
        return (f"{scope}layers {layers} x post-instruction positions {positions}; build "
                f"{s.get('build_harmful', 0)}+{s.get('build_harmless', 0)}, validate "
                f"{s.get('val_harmful', 0)}+{s.get('val_harmless', 0)} (train halves, "
                f"filtered by baseline replies); induce >= {MIN_INDUCE:g}, KL <= {MAX_KL}, "
                "lowest bypass")

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
            "reference_norm": number(self.reference_norm),
            "baseline": {k: number(v) for k, v in self.baseline.items()},
            "candidates": [{"layer": c.layer, "position": c.position, "bypass": number(c.bypass),
                            "induce": number(c.induce), "kl": number(c.kl), "kept": c.kept,
                            "why": c.why} for c in self.candidates],
        }


def _span(values: Sequence[int]) -> str:
    values = sorted(values)
    if not values:
        return "none"
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        return f"{values[0]}..{values[-1]}"
    return ",".join(str(v) for v in values)


def not_run(reason: str, prompts: SelectionPrompts | None = None) -> Selection:
    """A Selection that never searched (too few prompts): no direction, the reason."""
    return Selection(None, None, None, sizes=prompts.sizes() if prompts else {},
                     counts=dict(prompts.counts) if prompts else {}, not_run=reason)


def _activations(backend: Backend, sets: Sequence[PromptSet], layers: list[int],
                 positions: list[int], cache: ArrayCache | None, batch_size: int) -> np.ndarray:
    """``(prompt, layer, position, d_model)`` of every set, concatenated (cached per batch)."""
    from refusal_checks.cache.resume import ChunkStats, chunked_array

    parts = []
    for prompts in sets:
        def compute(sub: PromptSet, progress: Any) -> np.ndarray:
            return backend.residual_stream(sub, layers, positions, batch_size=batch_size,
                                           progress=progress)

        if cache is None:
            parts.append(compute(prompts, None))
        else:
            key = activation_key(backend, prompts, layers, positions)
            whole = cache.load(key)
            if whole is not None and len(whole) == len(prompts):
                cost.note(hits=1)
                parts.append(whole)
                continue
            stats = ChunkStats()
            parts.append(chunked_array(cache, key, prompts, batch_size, compute,
                                       meta={"model": backend.name, "set": prompts.name,
                                             "site": "resid_pre, Arditi candidates"},
                                       stats=stats))
            cost.note(computed=1, batches_resumed=stats.batches_cached,
                      prompts=stats.prompts_computed)
    return np.concatenate(parts)


def _logprobs(backend: Any, sets: Sequence[PromptSet], edit: Intervention | None,
              batch_size: int) -> np.ndarray:
    return np.concatenate([backend.last_logprobs(s, intervention=edit, batch_size=batch_size)
                           for s in sets])


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
) -> Selection:
    """Run Arditi et al.'s search; see the module docstring.

    Args:
        backend: The model (needs ``last_logprobs`` and ``refusal_token_ids``).
        prompts: Build and validation prompts (:func:`refusal_checks.measure.arditi.selection_prompts`).
        layers: Candidate layers (default :func:`candidate_layers`; a layer in the last
            20% is refused).
        positions: Negative offsets (default: the backend's post-instruction positions).
        cache: Where build activations and per-candidate scores are cached.
        token_ids: Refusal tokens; default ``backend.refusal_token_ids()``.
        progress: Called with (candidates done, total) after each candidate.
    """
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
    acts_h = _activations(backend, prompts.build_harmful, layers, positions, cache, batch_size)
    acts_b = _activations(backend, prompts.build_harmless, layers, positions, cache, batch_size)
    means = acts_h.astype(np.float64).mean(axis=0) - acts_b.astype(np.float64).mean(axis=0)
    base: dict[str, np.ndarray] = {}

    def harmless_base() -> np.ndarray:
        if "logprobs" not in base:
            base["logprobs"] = _logprobs(backend, prompts.val_harmless, None, batch_size)
        return base["logprobs"]

    inputs = [backend.input_digest(s) for s in prompts.val_harmful + prompts.val_harmless]
    sites = [(i, j) for j in range(len(positions)) for i in range(len(layers))]  # Arditi's order
    n_h, n_b = prompts.sizes()["val_harmful"], prompts.sizes()["val_harmless"]
    rows: dict[tuple[int, int], np.ndarray] = {}
    for done, (i, j) in enumerate(sites, start=1):
        direction = means[i, j]
        if np.linalg.norm(direction) > 0:
            rows[(i, j)] = _candidate_scores(
                backend, prompts, layers[i], direction, token_ids, cache, inputs,
                harmless_base, batch_size)
        else:
            rows[(i, j)] = np.full(n_h + 2 * n_b, np.nan)
        if progress is not None:
            progress(done, len(sites))
    order = [(i, j) for i in range(len(layers)) for j in range(len(positions))]
    table = np.array([rows[site] for site in order]).reshape(len(order), n_h + 2 * n_b)
    bypass, induce, kls = table[:, :n_h], table[:, n_h:n_h + n_b], table[:, n_h + n_b:]
    candidates = [judge_candidate(layers[i], positions[j], *(_mean(a[k]) for a in (
        bypass, induce, kls))) for k, (i, j) in enumerate(order)]
    best = choose(candidates)
    chosen = None if best is None else (layers.index(best.layer), positions.index(best.position))
    reference = (float(np.linalg.norm(acts_b[:, chosen[0], chosen[1]].astype(np.float64),
                                      axis=1).mean()) if chosen else float("nan"))
    token_base = {"harmful_refusal_score": _mean(np.concatenate([
        refusal_score(backend.last_logprobs(s, batch_size=batch_size), token_ids)
        for s in prompts.val_harmful])),
        "harmless_refusal_score": _mean(refusal_score(harmless_base(), token_ids))}
    return Selection(
        best.layer if best else None, best.position if best else None,
        means[chosen].copy() if chosen else None, candidates, tuple(layers), tuple(positions),
        restricted, prompts.sizes(), dict(prompts.counts), reference, token_base,
        bypass, induce, kls)


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size and np.isfinite(values).all() else float("nan")


def _candidate_scores(backend: Any, prompts: SelectionPrompts, layer: int,
                      direction: np.ndarray, token_ids: list[int], cache: ArrayCache | None,
                      inputs: list[str], harmless_base: Callable[[], np.ndarray],
                      batch_size: int) -> np.ndarray:
    """Per validation prompt: bypass scores (harmful), induce scores and KL (harmless),
    one cache entry per candidate."""
    ablate = Ablate(direction, f"Arditi candidate L{layer}")
    steer = Steer(layer, direction, alpha=1.0, label=f"Arditi candidate L{layer}")

    def compute() -> np.ndarray:
        bypass = refusal_score(_logprobs(backend, prompts.val_harmful, ablate, batch_size),
                               token_ids)
        induce = refusal_score(_logprobs(backend, prompts.val_harmless, steer, batch_size),
                               token_ids)
        divergence = kl_divergence(harmless_base(),
                                   _logprobs(backend, prompts.val_harmless, ablate, batch_size))
        return np.concatenate([bypass, induce, divergence])

    if cache is None:
        return compute()
    key = cache_key(kind="arditi_candidate", model=backend.fingerprint, dtype=backend.dtype,
                    inputs=inputs, layer=layer, ablate=ablate.key(), steer=steer.key(),
                    tokens=token_ids)
    n = sum(prompts.sizes()[k] for k in ("val_harmful", "val_harmless", "val_harmless"))
    values, hit = cache.get_or_compute(key, compute, {"kind": "arditi_candidate",
                                                      "layer": layer}, expected_shape=(n,))
    # bypass (ablated), induce (steered) and KL (ablated) each forward their prompts once
    cost.note(**({"hits": 1} if hit else {"computed": 1, "prompts": n}))
    return values
