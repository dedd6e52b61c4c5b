"""Staged probes: held-out prompts that grow only while a verdict is still open.

A behavioural claim reads refusal rates on probes of held-out prompts. With 8 prompts per
category many intervals straddle their threshold. A *staged* (group-sequential) probe
looks first at the fixed design's prompts and, only while the verdict is INCONCLUSIVE for
a reason more prompts can settle, grows each prompt set (x2 per look, at most
``MAX_STAGES`` looks, capped by the set's held-out half) and looks again.

* **Nested stages.** Stage ``k + 1``'s prompts of a set contain stage ``k``'s: both are
  prefixes of the set's deterministic stratified order (``PromptSet.head``). Each stage is
  measured as its *increment* (the prompts it adds), its own prompt set with its own cache
  key, so a later look reuses every reply and score of the earlier ones, and stage 1 is
  exactly the fixed design's probe (same cache entries).
* **Error spending.** Each look may say SUPPORTED or REFUTED, so each look spends error.
  The error of the fixed design, ``1 - base_level`` (two-sided), is split equally over
  the ``K`` looks the plan allows: every look's interval has level
  ``1 - (1 - base_level) / K`` (Bonferroni). By the union bound the chance that *any* look
  wrongly decides is at most the fixed design's, whatever the rule for going on (so it
  holds for stopping at the first decision, and for a budget). ``K`` is fixed before any
  prompt is measured: from the sets' sizes only. A plan with one look is
  the fixed design itself. The looks are nested, hence positively correlated, so the
  split is conservative; a Pocock-type constant would be tighter but needs the joint law
  of the looks, which differs between claims (Wilson, Tango, bootstrap intervals).
* **What more prompts can settle** (:func:`open_for_more`): an interval that straddles the
  threshold, too few observations behind a rate (prompts refused at baseline), or what a
  claim names (e.g. too few categories with baseline refusals). A failed requirement that
  is not measured on the probe (the model does not refuse at all, the cheap score
  disagrees with the judge) or a NaN stops at once: more prompts cannot fix it.
* **Budget** (``--refusal-budget N``): at most ``N`` prompts in one claim's probe (all
  the sets it reads, at one look). Looks whose probe exceeds it are not made, but they keep
  their share of the error: ``K`` counts every look the prompt sets allow, so the level of
  a look does not depend on the budget, and rerunning with a smaller budget after an open
  verdict cannot buy a wider level on the same prompts. A verdict still open at the last
  allowed look says that the budget stopped it. Stage 1 always runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from refusal_checks.prompts.sets import PromptSet
from refusal_checks.stats.intervals import simultaneous_level
from refusal_checks.stats.decisions import STRADDLES, TOO_FEW
from refusal_checks.stats.verdict import Outcome, Verdict

# Each look doubles every set, at most this many looks (8 -> 16 -> 32 prompts per category).
GROWTH = 2
MAX_STAGES = 3
PROTOCOL = ("staged probes: x2 per look up to the held-out half while the interval "
            "straddles the threshold, alpha split equally over the looks")


def plan(first: int, available: int, *, growth: int = GROWTH,
         stages: int = MAX_STAGES) -> tuple[int, ...]:
    """Strictly increasing probe sizes ``first, first x growth, ...``, capped at
    ``available`` (the held-out half), at most ``stages`` of them: ``plan(8, 32)`` is
    ``(8, 16, 32)``, ``plan(24, 32)`` is ``(24, 32)``, ``plan(64, 64)`` is ``(64,)``."""
    if first < 1 or available < 1 or growth < 2 or stages < 1:
        raise ValueError(f"need first, available, stages >= 1 and growth >= 2, got "
                         f"{first}, {available}, {stages}, {growth}")
    sizes = [min(first, available)]
    while len(sizes) < stages and sizes[-1] < available:
        sizes.append(min(sizes[-1] * growth, available))
    return tuple(sizes)


def increments(prompts: PromptSet, sizes: Sequence[int]) -> tuple[PromptSet, ...]:
    """The prompts each stage adds: ``head(s_1)``, ``head(s_2)`` minus ``head(s_1)``, ...

    Stage ``k``'s probe is the union of the first ``k`` increments (``head(s_k)``)."""
    parts, before = [], None
    for size in sizes:
        now = prompts.head(size)
        parts.append(now if before is None else now.without(before))
        before = now
    return tuple(parts)


def look_levels(base_level: float, looks: int) -> tuple[float, ...]:
    """Per-look confidence levels: the error ``1 - base_level`` split equally."""
    return (simultaneous_level(base_level, looks),) * looks


@dataclass(frozen=True)
class StagedProbe:
    """Nested stages of the prompt sets one claim reads.

    Attributes:
        harmful: category -> the increments of its held-out should-refuse prompts.
        benign: The increments of the held-out benign prompts (empty: not read).
    """

    harmful: Mapping[str, tuple[PromptSet, ...]]
    benign: tuple[PromptSet, ...] = ()

    @classmethod
    def build(cls, harmful: Mapping[str, PromptSet], benign: PromptSet | None,
              first: int, first_benign: int) -> StagedProbe:
        """Stages of held-out halves: each set starts at the fixed design's size."""
        return cls({name: increments(p, plan(first, len(p))) for name, p in harmful.items()},
                   increments(benign, plan(first_benign, len(benign))) if benign else ())

    def only(self, categories: Sequence[str] | None = None, *,
             benign: bool = True) -> StagedProbe:
        """The sets one claim reads: these categories (all when None, none when empty)."""
        names = list(self.harmful) if categories is None else list(categories)
        return StagedProbe({n: self.harmful[n] for n in names},
                           self.benign if benign else ())

    @property
    def stages(self) -> int:
        return max([len(p) for p in self.harmful.values()] + [len(self.benign)] + [1])

    def harmful_at(self, stage: int) -> dict[str, list[PromptSet]]:
        """category -> the increments making up its probe at ``stage`` (from 1)."""
        return {name: list(parts[:stage]) for name, parts in self.harmful.items()}

    def benign_at(self, stage: int) -> list[PromptSet]:
        return list(self.benign[:stage])

    def sizes(self, stage: int) -> dict[str, Any]:
        """Prompts per category (min-max when uneven), benign and in all at ``stage``."""
        counts = [sum(len(p) for p in parts) for parts in self.harmful_at(stage).values()]
        benign = sum(len(p) for p in self.benign_at(stage))
        per: int | list[int] = 0
        if counts:
            per = counts[0] if min(counts) == max(counts) else [min(counts), max(counts)]
        return {"per_category": per, "benign": benign, "prompts": sum(counts) + benign}

    def label(self, stage: int) -> str:
        """``n=16/cat``, ``n=64 benign`` or both."""
        sizes, text = self.sizes(stage), []
        per = sizes["per_category"]
        if self.harmful:
            text.append(f"n={per}/cat" if isinstance(per, int) else f"n={per[0]}-{per[1]}/cat")
        if self.benign:
            text.append(f"{'n=' if not text else ''}{sizes['benign']} benign")
        return ", ".join(text)


def concat(measure: Callable[[PromptSet], Any], parts: Sequence[PromptSet]) -> np.ndarray:
    """``measure`` of each increment, concatenated: one value per prompt of the stage."""
    return np.concatenate([np.asarray(measure(p)) for p in parts])


def open_for_more(verdict: Verdict,
                  fixable: Callable[[Verdict], bool] | None = None) -> bool:
    """Whether more prompts could settle this verdict (see the module docstring)."""
    if verdict.outcome is not Outcome.INCONCLUSIVE:
        return False
    reason = verdict.reason
    return (reason.startswith(STRADDLES) or reason.startswith(TOO_FEW)
            or (fixable is not None and fixable(verdict)))


def allowed_stages(probe: StagedProbe, budget: int | None) -> int:
    """Looks the plan allows: every stage whose probe fits in ``budget`` (stage 1 always)."""
    stages = 1  # probes only grow from stage to stage, so the ones that fit are a prefix
    while stages < probe.stages and (budget is None
                                     or probe.sizes(stages + 1)["prompts"] <= budget):
        stages += 1
    return stages


def run(look: Callable[[int, float], Verdict], probe: StagedProbe, *,
        base_level: float = 0.95, budget: int | None = None,
        fixable: Callable[[Verdict], bool] | None = None, can_grow: bool = True) -> Verdict:
    """Look at stage 1, 2, ... while the verdict stays open; the last look's verdict.

    Args:
        look: ``(stage, level) -> Verdict`` measured on ``probe`` at that stage, its
            interval at ``level``.
        probe: The claim's staged sets.
        base_level: The fixed design's level (0.95; 0.90 for TOST equivalence claims),
            whose error the looks share.
        budget: At most this many prompts in the probe at one look (None: no cap).
        fixable: Claim-specific INCONCLUSIVE verdicts that more prompts can settle.
        can_grow: False when a requirement measured off the probe already fails: one look
            at the fixed design's level, since nothing here could settle it.

    Returns:
        The verdict of the last look, its reason followed by ``stage k of K (n=...)``, and
        ``details["staged"]``: the looks made (stage, sizes, level, n, outcome, interval),
        the plan and why it stopped.
    """
    planned = probe.stages if can_grow else 1
    stages = allowed_stages(probe, budget) if can_grow else 1
    # The error is split over the looks the prompt sets allow, whatever the budget: a rerun
    # with a smaller budget after an open verdict must not buy a fresh, wider level on the
    # same prompts (#26). A budget only stops the looks early; it never raises their level.
    level = look_levels(base_level, planned)[0]
    looks: list[dict[str, Any]] = []
    for stage in range(1, stages + 1):
        verdict = look(stage, level)
        looks.append({"stage": stage, **probe.sizes(stage), "level": round(level, 6),
                      "n": verdict.n, "outcome": verdict.outcome.value,
                      "interval": [float(verdict.interval[0]), float(verdict.interval[1])]})
        if not open_for_more(verdict, fixable):
            break
    still_open = open_for_more(verdict, fixable)
    if not still_open:
        stopped = "decided" if verdict.outcome is not Outcome.INCONCLUSIVE else \
            "more prompts cannot settle this verdict"
    elif stage < planned:
        stopped = "budget"
    else:
        stopped = "largest stage (the held-out halves hold no more prompts)"
    text = f"stage {stage} of {stages} ({probe.label(stage)}, level {level:.4g} per look)"
    if stopped == "budget":
        need = probe.sizes(stage + 1)["prompts"]
        text += (f"; the budget stopped growth (--refusal-budget {budget}: stage "
                 f"{stage + 1} of {planned} needs {need} prompts)")
    details = dict(verdict.details)
    details["staged"] = {"stage": stage, "stages": stages, "planned_stages": planned,
                         "level_per_look": level, "alpha": round(1.0 - base_level, 6),
                         "spending": "equal split over the looks (Bonferroni)",
                         "budget": budget, "stopped": stopped, "looks": looks,
                         "label": probe.label(stage)}
    reason = f"{verdict.reason}; {text}" if verdict.reason else text
    return replace(verdict, reason=reason, details=details)
