"""What a regression rule compares: one rate's sample read from a report, two samples compared.

A :class:`Sample` is the ``(k, n)`` behind a rate and, where the report recorded them, the
outcome of each prompt by digest (:mod:`refusal_checks.stats.paired`). Two samples of the same
prompts are compared paired: Tango's interval from the discordant pairs, and the prompts
behind them. Samples without per-prompt outcomes (a report written before they were
recorded), or of different prompts, are compared unpaired with Newcombe's interval, and the
:class:`Comparison` says why. Standard library only at import time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from refusal_checks.stats.paired import discordance

BYPASS_CLAIM = "ablation-bypasses-refusal"
PAIRED, UNPAIRED = "paired", "unpaired"


@dataclass(frozen=True)
class Sample:
    """The prompts behind one rate.

    Attributes:
        k: Prompts refused.
        n: Prompts asked.
        outcomes: digest -> refused, one per prompt, or None when the report has none.
        texts: digest -> prompt text, where recorded.
        missing: Why ``outcomes`` is None.
    """

    k: int
    n: int
    outcomes: dict[str, bool] | None = None
    texts: dict[str, str] = field(default_factory=dict)
    missing: str = "no per-prompt outcomes"

    @property
    def rate(self) -> float:
        return self.k / self.n


# A sample, or the reason the rate cannot be read.
Counts = Sample | str


def _per_prompt(data: Any, texts: Any, k: int, n: int) -> dict[str, Any]:
    """``outcomes`` / ``texts`` / ``missing`` keywords of a :class:`Sample`."""
    if data is None:
        return {"missing": "the report has no per-prompt outcomes (it predates them)"}
    if not isinstance(data, Mapping) or not all(
            isinstance(key, str) and isinstance(value, bool) for key, value in data.items()):
        return {"missing": "its per-prompt outcomes are not digest -> true/false"}
    if len(data) != n or sum(data.values()) != k:
        return {"missing": f"its {len(data)} per-prompt outcomes ({sum(data.values())} "
                           f"refused) do not match its counts ({k}/{n})"}
    names = {str(key): str(value) for key, value in texts.items()} \
        if isinstance(texts, Mapping) else {}
    return {"outcomes": dict(data), "texts": names}


def behaviour_sample(record: Mapping[str, Any] | None, side: str) -> Counts:
    """The harmful (``side="harmful"``) or benign rate of a ``refusal_behaviour`` record."""
    if record is None:
        return "not recorded"
    k_key, n_key = ("refused", "n") if side == "harmful" else ("benign_refused", "benign_n")
    k, n = record.get(k_key), record.get(n_key)
    if not isinstance(k, int) or not isinstance(n, int) or isinstance(k, bool) or n < 1 \
            or not 0 <= k <= n:
        return f"no usable counts ({k_key}={k!r}, {n_key}={n!r})"
    outcomes = record.get("outcomes")
    data = outcomes.get(side) if isinstance(outcomes, Mapping) else outcomes
    return Sample(k, n, **_per_prompt(data, record.get("texts"), k, n))


def bypass_sample(verdicts: list[dict[str, Any]], model: str | None) -> Counts:
    """Refusals kept under ablation, from the bypass claim's rate, n and per-prompt outcomes."""
    found = [v for v in verdicts if v.get("claim") == BYPASS_CLAIM and v.get("model") == model]
    if not found:
        return f"no {BYPASS_CLAIM} verdict"
    record = found[-1]
    estimate, n = finite_float(record.get("estimate")), record.get("n")
    if estimate is None or not isinstance(n, int) or n < 1:
        return f"{BYPASS_CLAIM} has no usable rate (estimate {estimate!r}, n={n!r})"
    k = round(estimate * n)
    if abs(k - estimate * n) > 1e-6 or not 0 <= k <= n:
        return f"{BYPASS_CLAIM}'s estimate {estimate!r} is not a rate over n={n}"
    details = record.get("details")
    details = details if isinstance(details, Mapping) else {}
    return Sample(k, n, **_per_prompt(details.get("outcomes"), details.get("texts"), k, n))


def finite_float(value: Any) -> float | None:
    """``float(value)``, or None for anything that is not a finite-or-inf number (NaN too)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class Comparison:
    """``current - baseline`` with its interval and the evidence behind it.

    Attributes:
        change: The difference of the rates.
        interval: Tango's paired interval, or Newcombe's unpaired one.
        method: ``paired`` or ``unpaired``.
        pairs: Prompts in both runs (0 when either run lacks per-prompt outcomes).
        lost: ``(digest, text)`` refused in the baseline and not now.
        gained: ``(digest, text)`` refused now and not in the baseline.
        why_unpaired: Why the unpaired interval was used ("" when paired).
    """

    change: float
    interval: tuple[float, float]
    method: str
    pairs: int
    lost: tuple[tuple[str, str], ...] = ()
    gained: tuple[tuple[str, str], ...] = ()
    why_unpaired: str = ""

    def describe(self) -> str:
        """How the interval was made, for the rule's message."""
        if self.method == PAIRED:
            return (f"paired on {self.pairs} prompts: {len(self.lost)} refused before and not "
                    f"now, {len(self.gained)} refused now and not before")
        text = f"unpaired (Newcombe): {self.why_unpaired}"
        if self.pairs:
            text += (f"; of the {self.pairs} shared prompts {len(self.lost)} were refused before "
                     f"and not now, {len(self.gained)} now and not before")
        return text

    def evidence(self) -> dict[str, Any]:
        """The JSON form: method, pair and discordant counts, every changed prompt."""
        changed = [{"digest": d, "text": t, "before": True, "now": False} for d, t in self.lost]
        changed += [{"digest": d, "text": t, "before": False, "now": True}
                    for d, t in self.gained]
        return {"method": self.method, "pairs": self.pairs,
                "refused_before_not_now": len(self.lost),
                "refused_now_not_before": len(self.gained),
                "why_unpaired": self.why_unpaired, "changed": changed}


def compare_samples(current: Sample, baseline: Sample, level: float) -> Comparison:
    """Paired when both runs recorded the same prompts' outcomes, else unpaired (and why)."""
    now, before = current.outcomes, baseline.outcomes
    if now is None or before is None:
        from refusal_checks.stats.intervals import newcombe_interval

        side = "this run" if now is None else "the baseline"
        why = f"{side}: {(current if now is None else baseline).missing}"
        return Comparison(current.rate - baseline.rate,
                          newcombe_interval(current.k, current.n, baseline.k, baseline.n, level),
                          UNPAIRED, 0, why_unpaired=why)
    found = discordance(before, now)
    texts = {**baseline.texts, **current.texts}
    lost = tuple((d, texts.get(d, "")) for d in found.lost)
    gained = tuple((d, texts.get(d, "")) for d in found.gained)
    if set(now) == set(before):
        from refusal_checks.stats.paired import tango_interval

        return Comparison(current.rate - baseline.rate,
                          tango_interval(len(gained), len(lost), found.pairs, level), PAIRED,
                          found.pairs, lost, gained)
    from refusal_checks.stats.intervals import newcombe_interval

    why = (f"the runs asked different prompts ({len(set(now) - set(before))} only in this run, "
           f"{len(set(before) - set(now))} only in the baseline)")
    return Comparison(current.rate - baseline.rate,
                      newcombe_interval(current.k, current.n, baseline.k, baseline.n, level),
                      UNPAIRED, found.pairs, lost, gained, why)
