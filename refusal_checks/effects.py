"""What interventions do to behaviour: refusal scores, judged replies, KL, steering sweeps.

Every model call goes through the on-disk cache, keyed like activations plus the
intervention's kind, layer and vector digest, so a warm rerun does no model work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from refusal_checks import cost, stats
from refusal_checks.activations import replies
from refusal_checks.backend import Backend
from refusal_checks.cache import cache_key
from refusal_checks.cache_store import ArrayCache
from refusal_checks.interventions import Intervention
from refusal_checks.prompts import PromptSet
from refusal_checks.scoring import kl_divergence, refusal_score


def _key(backend: Backend, prompts: PromptSet, kind: str,
         intervention: Intervention | None, **extra: Any) -> str:
    return cache_key(kind=kind, model=backend.fingerprint, dtype=backend.dtype,
                     inputs=backend.input_digest(prompts), prompts=prompts.digest,
                     intervention=intervention.key() if intervention is not None else None,
                     **extra)


def score_key(backend: Backend, prompts: PromptSet, token_ids: Sequence[int],
              intervention: Intervention | None) -> str:
    """Cache key of :func:`scores` (shared with :func:`refusal_checks.damage.scores_and_kl`)."""
    return _key(backend, prompts, "refusal_score", intervention,
                tokens=sorted(int(t) for t in token_ids))


def kl_key(backend: Backend, prompts: PromptSet, intervention: Intervention) -> str:
    """Cache key of :func:`kl` (shared with :func:`refusal_checks.damage.scores_and_kl`)."""
    return _key(backend, prompts, "kl", intervention)


def scores(backend: Backend, prompts: PromptSet, token_ids: Sequence[int],
           intervention: Intervention | None, cache: ArrayCache | None,
           batch_size: int = 16) -> np.ndarray:
    """Cheap refusal score (log-odds of a refusal opening) per prompt, ``(prompt,)``."""
    key = score_key(backend, prompts, token_ids, intervention)

    def compute() -> np.ndarray:
        logprobs = backend.last_logprobs(prompts, intervention=intervention,
                                         batch_size=batch_size)
        return refusal_score(logprobs, token_ids)

    return _cached(cache, key, compute, prompts, "refusal_score")


def kl(backend: Backend, prompts: PromptSet, intervention: Intervention,
       cache: ArrayCache | None, batch_size: int = 16) -> np.ndarray:
    """``KL(unedited || edited)`` of the first reply token's distribution, ``(prompt,)``."""
    key = kl_key(backend, prompts, intervention)

    def compute() -> np.ndarray:
        base = backend.last_logprobs(prompts, batch_size=batch_size)
        edited = backend.last_logprobs(prompts, intervention=intervention,
                                       batch_size=batch_size)
        return kl_divergence(base, edited)

    return _cached(cache, key, compute, prompts, "kl", passes=2)


def _cached(cache: ArrayCache | None, key: str, compute: Any, prompts: PromptSet,
            kind: str, passes: int = 1) -> np.ndarray:
    """One value per prompt, from the cache or computed (``passes`` forwards per prompt)
    and stored."""
    if cache is None:
        values, hit = compute(), False
    else:
        values, hit = cache.get_or_compute(key, compute, {"set": prompts.name, "kind": kind},
                                           expected_shape=(len(prompts),))
    cost.note(**({"hits": 1} if hit else {"computed": 1, "prompts": passes * len(prompts)}))
    return values


def judged(backend: Backend, prompts: PromptSet, judge: Any,
           intervention: Intervention | None, cache: ArrayCache | None, *,
           max_new_tokens: int, batch_size: int = 16, console: Any | None = None
           ) -> tuple[np.ndarray, list[str]]:
    """Greedy replies under the intervention and the judge's refused/not per prompt."""
    texts = replies(backend, prompts, max_new_tokens=max_new_tokens, cache=cache,
                    batch_size=batch_size, console=console, intervention=intervention)
    return np.asarray(judge.refused(texts), bool), texts


@dataclass(frozen=True)
class Rate:
    """A refusal rate with its Wilson interval."""

    refused: int
    n: int

    @property
    def value(self) -> float:
        return self.refused / self.n if self.n else float("nan")

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        return stats.wilson_interval(self.refused, self.n, level)

    @classmethod
    def of(cls, refused: np.ndarray) -> "Rate":
        refused = np.asarray(refused, bool)
        return cls(int(refused.sum()), int(refused.size))


@dataclass(frozen=True)
class KnobSweep:
    """Refusal on harmful and benign probes while steering along each direction.

    Attributes:
        directions: Names of the steering directions (categories).
        strengths: Relative strengths (multiples of the mean residual norm at the layer).
        alphas: ``(direction, strength)`` raw coefficients actually added.
        harmful: ``(direction, strength, prompt)`` refused? on harmful probes.
        benign: ``(direction, strength, prompt)`` refused? on benign probes.
    """

    directions: list[str]
    strengths: list[float]
    alphas: np.ndarray
    harmful: np.ndarray
    benign: np.ndarray

    def rates(self, h_index: np.ndarray | None = None,
              b_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Refusal rate RR and over-refusal rate ORR, each ``(direction, strength)``."""
        harmful = self.harmful if h_index is None else self.harmful[:, :, h_index]
        benign = self.benign if b_index is None else self.benign[:, :, b_index]
        return harmful.mean(axis=2), benign.mean(axis=2)

    def path_deviation(self, h_index: np.ndarray | None = None,
                       b_index: np.ndarray | None = None, *,
                       tested: Sequence[int] | None = None,
                       reference: Sequence[int] | None = None) -> float:
        """Largest mean gap between one direction's trade-off path and the others'.

        "The same trade-off" means the same RR at the same ORR, whatever the speed along
        the path (PAPER.md A.3: non-safety directions move more slowly but trace the same
        path). For each direction, the other directions' (ORR, RR) points form a monotone
        reference path (sorted by ORR, running maximum of RR); the direction's own points
        are compared with it by linear interpolation, and the gaps are averaged.

        ``tested`` / ``reference``: row indices of the directions compared and of those
        whose points form the path (default: every direction against all the others;
        ``sae-steering-same-knob`` tests the SAE directions against the category ones).
        """
        rr, orr = self.rates(h_index, b_index)
        rows = range(len(self.directions))
        worst = 0.0
        for c in (rows if tested is None else tested):
            others = [j for j in (rows if reference is None else reference) if j != c]
            x = orr[others].ravel()
            y = rr[others].ravel()
            order = np.argsort(x, kind="stable")
            x, y = x[order], np.maximum.accumulate(y[order])
            worst = max(worst, float(np.mean(np.abs(rr[c] - np.interp(orr[c], x, y)))))
        return worst

    def bootstrap_deviation(self, rng: np.random.Generator, n_boot: int,
                            level: float = 0.95, **rows: Sequence[int] | None
                            ) -> tuple[float, tuple[float, float]]:
        """Path deviation with a percentile interval over resampled probe prompts.

        The same resampled prompts serve every direction and strength (paired), so a
        difference between directions is not confused with a difference between prompts.
        ``rows``: ``tested`` / ``reference`` of :meth:`path_deviation`.
        """
        n_h, n_b = self.harmful.shape[2], self.benign.shape[2]
        replicates = np.array([
            self.path_deviation(rng.integers(0, n_h, n_h), rng.integers(0, n_b, n_b), **rows)
            for _ in range(n_boot)])
        return self.path_deviation(**rows), stats.percentile_interval(replicates, level)

    def joined(self, other: KnobSweep) -> KnobSweep:
        """Both sweeps' directions in one (same strengths and probe prompts)."""
        if list(other.strengths) != list(self.strengths):
            raise ValueError(f"sweeps at different strengths: {self.strengths} and "
                             f"{other.strengths}")
        return KnobSweep(self.directions + other.directions, list(self.strengths),
                         np.concatenate([self.alphas, other.alphas]),
                         np.concatenate([self.harmful, other.harmful]),
                         np.concatenate([self.benign, other.benign]))

    def speeds(self) -> dict[str, float]:
        """ORR gained per unit of relative strength (least squares through the grid)."""
        _, orr = self.rates()
        s = np.asarray(self.strengths, np.float64)
        s = s - s.mean()
        denominator = float(s @ s) or float("nan")
        return {d: float((orr[i] - orr[i].mean()) @ s / denominator)
                for i, d in enumerate(self.directions)}


def mean_norm(acts: np.ndarray) -> float:
    """Mean residual-stream norm of ``(prompt, d_model)`` activations (steering's unit)."""
    return float(np.linalg.norm(np.asarray(acts, np.float64), axis=1).mean())
