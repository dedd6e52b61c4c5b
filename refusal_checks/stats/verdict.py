"""Outcome and Verdict: what a claim concludes, with the numbers behind it.

A verdict is plain data. It knows nothing of pytest; the plugin turns it into
pass / fail / skip, and the report turns it into table rows and JSON.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


class Outcome(str, enum.Enum):
    """The three honest outcomes of a claim."""

    SUPPORTED = "supported"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"


# How the estimate must relate to the threshold for the claim to hold.
ABOVE = ">"
BELOW = "<"


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if abs(x) >= 100 or (abs(x) < 0.01 and x != 0):
        return f"{x:.3g}"
    return f"{x:.3f}"


@dataclass(frozen=True)
class Verdict:
    """One claim's conclusion on one model.

    Attributes:
        statistic: What was measured, as a noun phrase ("median between-category cosine").
        estimate: The point estimate of the statistic.
        interval: Lower and upper bound of its confidence interval.
        threshold: The value the claim compares against.
        comparison: ``">"`` when the claim holds for estimates above the threshold,
            ``"<"`` when it holds below.
        n: How many observations the statistic rests on (prompts, pairs, ...).
        outcome: SUPPORTED, REFUTED or INCONCLUSIVE.
        reason: Why, in one sentence; always set for INCONCLUSIVE.
        level: Confidence level of the interval.
        seed: Seed of the random generator behind the interval, if any.
        paper: The paper's figure for comparison, as text.
        details: Extra numbers worth keeping (per-category values, null quantiles...).
    """

    statistic: str
    estimate: float
    interval: tuple[float, float]
    threshold: float
    comparison: str
    n: int
    outcome: Outcome
    reason: str = ""
    level: float = 0.95
    seed: int | None = None
    paper: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.comparison not in (ABOVE, BELOW):
            raise ValueError(f"comparison must be '>' or '<', got {self.comparison!r}")

    def line(self) -> str:
        """One line: ``median cosine 0.55 [0.49, 0.61] < 0.86 (n=55) -> supported``."""
        lo, hi = self.interval
        text = (
            f"{self.statistic} {_fmt(self.estimate)} [{_fmt(lo)}, {_fmt(hi)}] "
            f"{self.comparison} {_fmt(self.threshold)} (n={self.n}) -> {self.outcome.value}"
        )
        if self.reason:
            text += f": {self.reason}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (outcome as its string value)."""
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["interval"] = [float(self.interval[0]), float(self.interval[1])]
        data["line"] = self.line()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        """Inverse of :meth:`to_dict`.

        Keys that are not fields are ignored, so a record from the JSON report (which adds
        claim, model, says, source, test and duration) reads back as it is.
        """
        names = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in names}
        data["outcome"] = Outcome(data["outcome"])
        data["interval"] = tuple(data["interval"])
        return cls(**data)
