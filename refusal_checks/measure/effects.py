"""What interventions do to behaviour: refusal scores, judged replies, KL.

Every model call goes through the on-disk cache, keyed like activations plus the
intervention's kind, layer and vector digest, so a warm rerun does no model work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks.core import cost
from refusal_checks.measure.activations import replies
from refusal_checks.models.backend import Backend
from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.models.interventions import Intervention
from refusal_checks.judges.base import judge_refused
from refusal_checks.prompts.load import PromptSet
from refusal_checks.models.scoring import kl_divergence, refusal_score


def _key(backend: Backend, prompts: PromptSet, kind: str,
         intervention: Intervention | None, **extra: Any) -> str:
    return cache_key(kind=kind, model=backend.fingerprint, dtype=backend.dtype,
                     inputs=backend.input_digest(prompts), prompts=prompts.digest,
                     intervention=intervention.key() if intervention is not None else None,
                     **extra)


def score_key(backend: Backend, prompts: PromptSet, token_ids: Sequence[int],
              intervention: Intervention | None) -> str:
    """Cache key of :func:`scores` (shared with :func:`refusal_checks.measure.damage.scores_and_kl`)."""
    return _key(backend, prompts, "refusal_score", intervention,
                tokens=sorted(int(t) for t in token_ids))


def kl_key(backend: Backend, prompts: PromptSet, intervention: Intervention) -> str:
    """Cache key of :func:`kl` (shared with :func:`refusal_checks.measure.damage.scores_and_kl`)."""
    return _key(backend, prompts, "kl", intervention)


def scores(backend: Backend, prompts: PromptSet, token_ids: Sequence[int],
           intervention: Intervention | None, cache: ArrayCache | None,
           batch_size: int = 16, logprobs: np.ndarray | None = None) -> np.ndarray:
    """Cheap refusal score (log-odds of a refusal opening) per prompt, ``(prompt,)``.

    ``logprobs``: the first reply token's log-probabilities under ``intervention``, when a
    generation already computed them (:class:`FirstStep`); otherwise one forward pass.
    """
    key = score_key(backend, prompts, token_ids, intervention)

    def compute() -> np.ndarray:
        found = logprobs if logprobs is not None else backend.last_logprobs(
            prompts, intervention=intervention, batch_size=batch_size)
        return refusal_score(found, token_ids)

    return _cached(cache, key, compute, prompts, "refusal_score",
                   passes=0 if logprobs is not None else 1)


class FirstStep:
    """The first reply token's log-probabilities a generation computed, by prompt text.

    Handed to :func:`refusal_checks.measure.activations.replies` as ``first_logprobs``; :meth:`of`
    gives them back for a prompt set, so the cheap score of judged replies reuses the
    generation's prompt pass instead of forwarding every prompt again.
    """

    def __init__(self) -> None:
        self.rows: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str], values: np.ndarray) -> None:
        for text, row in zip(texts, values):
            self.rows[text] = row

    def of(self, prompts: PromptSet) -> np.ndarray | None:
        """``(prompt, vocab)`` for every prompt of the set, or None when any is missing
        (replies served from the cache, or a backend that does not report them)."""
        if not prompts.texts or any(t not in self.rows for t in prompts.texts):
            return None
        return np.stack([self.rows[t] for t in prompts.texts])

    def completed(self, backend: Backend, prompts: PromptSet,
                  intervention: Intervention | None, batch_size: int = 16) -> np.ndarray | None:
        """:meth:`of`, with the rows of prompts the generation did not run (replies served as
        another generation's prefix) forwarded under ``intervention`` now: one pass for
        those prompts only. None when no prompt of the set was generated here."""
        missing = [t for t in prompts.texts if t not in self.rows]
        if not missing or len(missing) == len(prompts.texts):
            return self.of(prompts)
        rest = PromptSet(prompts.name, prompts.category, prompts.side, tuple(missing),
                         prompts.source)
        self(missing, backend.last_logprobs(rest, intervention=intervention,
                                            batch_size=batch_size))
        cost.note(prompts=len(missing))
        return self.of(prompts)


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
           max_new_tokens: int, batch_size: int = 16, console: Any | None = None,
           first_logprobs: FirstStep | None = None,
           plan: Any = None) -> tuple[np.ndarray, list[str]]:
    """Greedy replies under the intervention and the judge's refused/not per prompt;
    ``first_logprobs`` collects what generation computed for the cheap score; ``plan``:
    :func:`refusal_checks.measure.activations.replies`."""
    texts = replies(backend, prompts, max_new_tokens=max_new_tokens, cache=cache,
                    batch_size=batch_size, console=console, intervention=intervention,
                    first_logprobs=first_logprobs, plan=plan)
    return np.asarray(judge_refused(judge, texts, prompts.texts), bool), texts


def mean_norm(acts: np.ndarray) -> float:
    """Mean residual-stream norm of ``(prompt, d_model)`` activations (steering's unit)."""
    return float(np.linalg.norm(np.asarray(acts, np.float64), axis=1).mean())
