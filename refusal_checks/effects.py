"""What interventions do to behaviour: refusal scores, judged replies, KL.

Every model call goes through the on-disk cache, keyed like activations plus the
intervention's kind, layer and vector digest, so a warm rerun does no model work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks import cost
from refusal_checks.activations import replies
from refusal_checks.backend import Backend
from refusal_checks.cache import cache_key
from refusal_checks.cache_store import ArrayCache
from refusal_checks.interventions import Intervention
from refusal_checks.judges import judge_refused
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
    return np.asarray(judge_refused(judge, texts, prompts.texts), bool), texts


def mean_norm(acts: np.ndarray) -> float:
    """Mean residual-stream norm of ``(prompt, d_model)`` activations (steering's unit)."""
    return float(np.linalg.norm(np.asarray(acts, np.float64), axis=1).mean())
