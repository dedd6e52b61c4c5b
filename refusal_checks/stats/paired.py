"""Two runs on the same prompts: prompt digests, discordant pairs, Tango's paired interval,
and the smallest of several paired differences (an intersection-union test).

A release gate compares a candidate's refusal rate with a baseline's on the same prompts.
Treating the runs as independent samples (Newcombe's unpaired interval) throws the pairing
away: an unchanged model answers every prompt as before, yet two independent samples of 16
prompts at a rate of 0.5 can only show a change to within +-0.31. With the pairing, only
the prompts whose outcome changed (the discordant pairs) carry information about the
change, and "nothing changed on n prompts" bounds it by ``z^2 / (n + z^2)`` (+-0.19 on 16).

Per-prompt outcomes travel in the JSON report keyed by :func:`prompt_digest` (a short
sha256 of the prompt text), so a later run can pair its prompts with a saved baseline's.
Standard library only: the gate imports it in every run that has a policy.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# 16 hex characters (64 bits): a collision among a few thousand prompts has probability
# ~1e-13, and the key stays short in the JSON report.
DIGEST_CHARS = 16
# Bisection steps for the interval's endpoints: 200 halvings of [-1, 1] reach the float
# resolution long before the last step.
_STEPS = 200


def prompt_digest(text: str) -> str:
    """Short content digest of a prompt: the first DIGEST_CHARS hex digits of sha256(text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:DIGEST_CHARS]


def per_prompt_record(texts: Sequence[str], refused: Sequence[Any]) -> dict[str, Any]:
    """``{"outcomes": {digest: refused}, "texts": {digest: text}}`` for a report record.

    ``texts[i]`` was refused when ``refused[i]`` is true. A prompt that occurs twice keeps
    its first outcome; the reader then finds fewer outcomes than the record's ``n`` and
    compares the rate unpaired.

    Raises:
        ValueError: If the two sequences differ in length.
    """
    if len(texts) != len(refused):
        raise ValueError(f"need one outcome per prompt, got {len(texts)} prompts and "
                         f"{len(refused)} outcomes")
    outcomes: dict[str, bool] = {}
    names: dict[str, str] = {}
    for text, flag in zip(texts, refused):
        key = prompt_digest(str(text))
        if key not in outcomes:
            outcomes[key], names[key] = bool(flag), str(text)
    return {"outcomes": outcomes, "texts": names}


@dataclass(frozen=True)
class Discordance:
    """How the outcomes of the prompts two runs share differ.

    Attributes:
        pairs: Prompts with an outcome in both runs.
        gained: Digests refused in the second run ("now") and not in the first ("before").
        lost: Digests refused before and not now.
    """

    pairs: int
    gained: tuple[str, ...]
    lost: tuple[str, ...]


def discordance(before: Mapping[str, bool], now: Mapping[str, bool]) -> Discordance:
    """Pair two runs' per-prompt outcomes by digest (shared prompts only, in ``now``'s order)."""
    shared = [key for key in now if key in before]
    gained = tuple(k for k in shared if now[k] and not before[k])
    lost = tuple(k for k in shared if before[k] and not now[k])
    return Discordance(len(shared), gained, lost)


def _check(b: int, c: int, n: int, level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if n < 1 or b < 0 or c < 0 or b + c > n:
        raise ValueError(f"need n >= 1 pairs and 0 <= b, c with b + c <= n, got b={b!r}, "
                         f"c={c!r}, n={n!r}")


def tango_statistic(b: int, c: int, n: int, delta: float) -> float:
    """Tango's score statistic for ``H0: p1 - p2 = delta`` on ``n`` pairs.

    ``b`` pairs are positive in the first run only, ``c`` in the second only. With ``q`` the
    maximum-likelihood probability of a (second only) pair under the null, the positive
    root of ``2n q^2 + W q - c delta (1 - delta) = 0``, ``W = -b - c + (2n - b + c) delta``:
    ``T = (b - c - n delta) / sqrt(n (2 q + delta (1 - delta)))`` (Tango 1998, Stat Med
    17:891). A null variance of 0 gives ``+-inf`` (or 0 when ``b - c = n delta``).
    """
    w = -b - c + (2 * n - b + c) * delta
    constant = c * delta * (1.0 - delta)
    # sqrt(w^2 + 8 n constant) without squaring w (its square underflows for tiny deltas).
    extra = 8.0 * n * constant
    if extra >= 0:
        root = math.hypot(w, math.sqrt(extra))
    else:
        s = math.sqrt(-extra)
        root = math.sqrt(max(0.0, (abs(w) - s) * (abs(w) + s)))
    # The two algebraically equal forms of the positive root; the second avoids the
    # cancellation of root - w when w > 0 (a tiny delta would otherwise give q < 0).
    q = (root - w) / (4.0 * n) if w <= 0 else 2.0 * constant / (root + w)
    q = max(q, 0.0)
    variance = n * (2.0 * q + delta * (1.0 - delta))
    numerator = b - c - n * delta
    if variance <= 1e-300:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / math.sqrt(variance)


def _root(b: int, c: int, n: int, target: float, lo: float, hi: float) -> float:
    """``delta`` in ``[lo, hi]`` with ``T(delta) = target``; T falls as delta grows."""
    for _ in range(_STEPS):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if tango_statistic(b, c, n, mid) > target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tango_interval(b: int, c: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Tango's score interval for ``p1 - p2`` of two paired proportions.

    The first run's rate minus the second's, on the same ``n`` prompts, is
    ``(b - c) / n``: only the discordant pairs (``b`` positive in the first run only, ``c``
    in the second only) move it. The interval is ``{delta : |T(delta)| <= z}`` with
    :func:`tango_statistic` and ``z = Phi^-1((1 + level) / 2)``, its endpoints found by
    bisection. Like the Wilson interval it stays inside [-1, 1] and is honest at the edges:
    with no discordant pair it is ``+-z^2 / (n + z^2)``, which shrinks as ``n`` grows.
    Swapping the runs (``b <-> c``) negates it.

    Args:
        b: Pairs positive (e.g. refused) in the first run only.
        c: Pairs positive in the second run only.
        n: Pairs, ``n >= b + c``.
        level: Coverage.

    Raises:
        ValueError: For a bad level or counts.
    """
    _check(b, c, n, level)
    from refusal_checks.stats.intervals import normal_quantile

    z = normal_quantile(0.5 + level / 2.0)
    estimate = (b - c) / n
    # T(estimate) = 0, T(-1) = +inf and T(1) = -inf unless the estimate sits on that edge.
    lo = -1.0 if c == n else _root(b, c, n, z, -1.0, estimate)
    hi = 1.0 if b == n else _root(b, c, n, -z, estimate, 1.0)
    return (max(-1.0, min(lo, estimate)), min(1.0, max(hi, estimate)))


def no_change_half_width(n: int, level: float = 0.95) -> float:
    """Half-width of :func:`tango_interval` with no discordant pair: ``z^2 / (n + z^2)``.

    The largest change of a rate that ``n`` unchanged prompts cannot rule out: a margin
    ``m`` passes an unchanged model only when ``m`` exceeds it, i.e. ``n > z^2 (1 - m) / m``.
    """
    _check(0, 0, n, level)
    from refusal_checks.stats.intervals import normal_quantile

    z2 = normal_quantile(0.5 + level / 2.0) ** 2
    return z2 / (n + z2)




@dataclass(frozen=True)
class PairedDifference:
    """One unit's paired difference ``p1 - p2`` (a category: refused before minus after).

    Attributes:
        b: Pairs positive in the first run only.
        c: Pairs positive in the second run only.
        n: Pairs.
        interval: Tango's interval at the per-unit level (what SUPPORTED reads).
        joint: Tango's interval at the Bonferroni level (what REFUTED reads).
    """

    b: int
    c: int
    n: int
    interval: tuple[float, float]
    joint: tuple[float, float]

    @property
    def estimate(self) -> float:
        return (self.b - self.c) / self.n


def smallest_difference(counts: Mapping[str, tuple[int, int, int]], level: float = 0.95,
                        family: int | None = None
                        ) -> tuple[float, tuple[float, float], dict[str, PairedDifference]]:
    """Interval for the smallest of several paired differences: an intersection-union test.

    ``counts``: unit -> ``(b, c, n)`` as in :func:`tango_interval`. Each unit gets Tango's
    interval at ``level`` and at the Bonferroni level ``1 - (1 - level) / family``
    (``family``: the units the claim could have measured, fixed before measuring; default
    ``len(counts)``). With ``theta_min = min_u theta_u`` the true smallest difference, the
    interval is ``(min_u lo_u(level), min_u hi_u(bonferroni))``:

    * lower end: ``min_u lo_u > theta_min`` needs ``lo_{u*} > theta_{u*}`` for the unit
      ``u*`` that holds the minimum, probability ``<= (1 - level) / 2``; no multiplicity
      correction is needed (Berger 1982: the intersection-union test of
      ``"every theta_u > m"`` at level alpha tests each unit at level alpha);
    * upper end: ``min_u hi_u < theta_min`` needs some ``hi_u < theta_u``, probability
      ``<= family x (1 - level) / (2 family)``.

    So it covers ``theta_min`` with probability ``>= level`` (up to the coverage of Tango's
    interval itself; the combination is :func:`refusal_checks.stats.smallest.smallest_of`,
    shared with the bootstrapped minima of the geometry claims), and ``decide(interval, m, ">")`` is the rule "SUPPORTED when every
    unit's interval lies above ``m``, REFUTED when some unit's Bonferroni interval lies
    below ``m``". A percentile bootstrap of the minimum is not: the minimum of noisy
    estimates sits below the smallest truth, and its resamples lower still (issue #26).
    No units: ``(nan, (nan, nan), {})``.

    Returns:
        ``(smallest estimate, interval, unit -> PairedDifference)``.

    Raises:
        ValueError: For a bad level, family or counts.
    """
    family = len(counts) if family is None else family
    if family < max(len(counts), 1):
        raise ValueError(f"family must count every unit, got family={family!r} for "
                         f"{len(counts)} units")
    _check(0, 0, 1, level)
    from refusal_checks.stats.smallest import bonferroni_level, smallest_of

    joint_level = bonferroni_level(level, family)
    units = {name: PairedDifference(b, c, n, tango_interval(b, c, n, level),
                                    tango_interval(b, c, n, joint_level))
             for name, (b, c, n) in counts.items()}
    estimate, interval = smallest_of(units)
    return estimate, interval, units
