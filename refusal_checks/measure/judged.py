"""The behavioural claims' measurement object: judged replies, cheap scores and KL under an
intervention, one class that the ``measure`` fixture and the calibration both construct.

:class:`Measurements` is the interface the verdict code reads (the staged looks of
:mod:`refusal_checks.verdicts.staged_claims`, the cross-ablation, the sweep);
:class:`JudgedMeasure` is the one implementation. Under pytest the fixture gives it the run's
caches, batch size, progress console and observation record (what the reports'
``score_validation`` and ``damage`` sections read); the calibration gives it none of these,
so the same replies, scores and KL are computed in memory and nothing is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import numpy as np

from refusal_checks.core.cost import phase
from refusal_checks.judges.degenerate import broken_reason
from refusal_checks.measure.damage import BaseLogprobs, scores_and_kl
from refusal_checks.measure.effects import FirstStep, judged, kl
from refusal_checks.measure.protocol import REPLY_TOKENS


class Measurements(Protocol):
    """What a behavioural claim measures on a model (``prompts``: a PromptSet,
    ``intervention``: an Intervention or None for the unedited model)."""

    judge_name: str

    def refused(self, prompts: Any, intervention: Any = None, *,
                max_new_tokens: int = REPLY_TOKENS) -> np.ndarray:
        """``(prompt,)`` bool: the judge read the greedy reply as a refusal."""
        ...

    def score(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        """``(prompt,)`` cheap refusal score (log-odds of a refusal token first)."""
        ...

    def kl(self, prompts: Any, intervention: Any) -> np.ndarray:
        """``(prompt,)`` ``KL(unedited || edited)`` of the first reply token."""
        ...


class JudgedMeasure:
    """Judged replies, cheap scores and KL of one backend, cached when given caches.

    Args:
        backend: the model (any :class:`~refusal_checks.models.backend.Backend`).
        judge: reads a reply as refused or not (``judge.name`` is recorded).
        reply_cache, score_cache: ``ArrayCache`` of the replies and of scores/KL, or None.
        batch_size: prompts per forward pass or generation batch.
        observed: the run's :class:`~refusal_checks.measure.observations.Observations` of
            this model, or None: with a record, every judged prompt is also scored (the
            cheap score's agreement with the judge, per condition) and checked for broken
            text, and edited benign prompts get their KL (the damage axis).
        console: a context manager factory yielding the progress console, or None.
        plan: a :class:`~refusal_checks.measure.shared_replies.ReplyPlan`, or None: the
            longest budget the run reads per prompt, so one generation serves them all.
    """

    def __init__(self, backend: Any, judge: Any, *, reply_cache: Any = None,
                 score_cache: Any = None, batch_size: int = 16, observed: Any = None,
                 console: Callable[[], AbstractContextManager[Any]] | None = None,
                 plan: Any = None) -> None:
        self.backend, self.judge = backend, judge
        self.judge_name = judge.name
        self.model = backend.name
        self.tokens = backend.refusal_token_ids()
        self.reply_cache, self.score_cache = reply_cache, score_cache
        self.batch_size, self.observed = batch_size, observed
        self.console = console or (lambda: nullcontext(None))
        self.unedited = BaseLogprobs()
        self.plan = plan

    def refused(self, prompts: Any, intervention: Any = None, *,
                max_new_tokens: int = REPLY_TOKENS) -> np.ndarray:
        return self.replies(prompts, intervention, max_new_tokens=max_new_tokens)[0]

    def replies(self, prompts: Any, intervention: Any = None, *,
                max_new_tokens: int = REPLY_TOKENS) -> tuple[np.ndarray, list[str]]:
        """(refused? per prompt, the replies), greedy, ``max_new_tokens`` long, cached.

        With an observation record the same prompts are also scored under the same
        intervention (from the generation's own prompt pass, no extra forward), so the
        cheap score's agreement with the judge is known per condition, and each reply is
        checked for breakage (:mod:`refusal_checks.judges.degenerate`).
        """
        from refusal_checks.cache.replies import condition_of

        first = FirstStep() if self.observed is not None else None
        with self.console() as console:
            refused, texts = judged(self.backend, prompts, self.judge, intervention,
                                    self.reply_cache, max_new_tokens=max_new_tokens,
                                    batch_size=self.batch_size, console=console,
                                    first_logprobs=first, plan=self.plan)
        if self.observed is not None and first is not None:
            with phase("score validation"):
                found = first.completed(self.backend, prompts, intervention, self.batch_size)
                scored = self._score(prompts, intervention, found) > 0
            self.observed.add_judged(
                fingerprint=self.backend.fingerprint, condition=condition_of(intervention),
                prompt_set=prompts.name, side=prompts.side, prompts=prompts.texts,
                max_new_tokens=max_new_tokens, judge=refused, score=scored,
                broken=[broken_reason(t, p) for t, p in zip(texts, prompts.texts)],
                replies=texts)
        return refused, texts

    def score(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        """Cheap refusal score per prompt, cached; with an observation record, under an
        edit of benign prompts the next-token KL against the unedited model comes from the
        same forward pass and is recorded."""
        return self._score(prompts, intervention, None)

    def _score(self, prompts: Any, intervention: Any, first: np.ndarray | None) -> np.ndarray:
        from refusal_checks.cache.replies import condition_of
        from refusal_checks.measure.effects import scores

        if self.observed is None:
            return scores(self.backend, prompts, self.tokens, intervention, self.score_cache,
                          self.batch_size, logprobs=first)
        values, divergence = scores_and_kl(self.backend, prompts, self.tokens, intervention,
                                           self.score_cache, self.batch_size, self.unedited,
                                           first)
        condition = condition_of(intervention)
        self.observed.add_scored(condition=condition, prompt_set=prompts.name,
                                 side=prompts.side, prompts=prompts.texts, score=values > 0)
        if divergence is not None:
            self.observed.add_kl(condition=condition, prompt_set=prompts.name,
                                 prompts=prompts.texts, values=divergence)
        return values

    def kl(self, prompts: Any, intervention: Any) -> np.ndarray:
        """``KL(unedited || edited)`` of the first reply token per prompt, cached."""
        from refusal_checks.cache.replies import condition_of

        values = kl(self.backend, prompts, intervention, self.score_cache, self.batch_size)
        if self.observed is not None:
            self.observed.add_kl(condition=condition_of(intervention), prompt_set=prompts.name,
                                 prompts=prompts.texts, values=values)
        return values
