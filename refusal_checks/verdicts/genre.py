"""A claim's verdict from its genre controls, and the paper's design reported on its own.

Issue #26: "a claim's verdict is the claim's, not its design's". Joad et al. contrast each
category with one general benign pool (PAPER.md, Paper A, "Known weakness"), so each of
their directions also carries its category's genre (source, topic, style). In planted
worlds with ONE refusal direction plus per-category genre offsets that design called the
categories distinct (``distinct-directions``) and their ablations selective
(``ablation-is-category-selective``) in 100% of worlds (calibration/README.md). So the
paper's design cannot decide a claim about refusal; it is reported under its own id,
``<claim>-paper-design`` ("the paper's design reproduces"), with the genre caveat in its
reason, and the claim's verdict is formed from its *genre controls* (designs in which a
category's genre cancels) by :func:`from_genre_controls`:

1. some control SUPPORTED and some REFUTED -> INCONCLUSIVE (the controls disagree);
2. else some control REFUTED -> REFUTED, whatever the paper's design reads;
3. else some control SUPPORTED -> SUPPORTED if the paper's design is SUPPORTED too,
   otherwise INCONCLUSIVE (the designs disagree);
4. else (every control INCONCLUSIVE or not measured) -> INCONCLUSIVE, naming each control
   and why.

The argument, made from the designs' blind spots before any real-model result:

* Genre cancels only in a control, so only a control can say anything about *refusal*;
  the paper's design alone never makes a verdict (rule 4 even when it is SUPPORTED).
* The paper's design and a control fail in different ways. The general pool is fooled by
  genre differences *between categories*; genre-matched twins are fooled by differences
  *between a category and its own twins* (twins written to a different template per
  category). One refusal direction behind per-category twin differences makes the matched
  control say "distinct" while the general pool, whose benign side is the same for all,
  says "the same" (calibration scenario ``twin-mismatch``). A SUPPORTED therefore needs both
  to agree (rule 3): a wrong SUPPORTED then needs both blind spots at once.
* A REFUTED does not need the paper's design (rule 2): a control's REFUTED with the paper's
  design SUPPORTED is exactly the genre confound being caught (one refusal direction behind
  per-category genres), not a disagreement. The control's own blind spots push towards
  "distinct" / "selective" (twins off their category add per-category differences), so a
  control that still reads "the same" is not explained by them.
* Two controls that contradict each other (rule 1) show that at least one is fooled; with
  no way to tell which, nothing is concluded.
* Error: each control's interval is the claim's (95%, or the staged per-look level), and a
  boundary world is wrongly SUPPORTED (or REFUTED) by one control at most 2.5% of the time,
  so by the union bound by either of two at most 5%, the calibration goal; the paper's
  agreement only lowers the SUPPORTED rate.

The combined verdict carries the numbers of the control that decided it (the first
SUPPORTED or REFUTED one, in the order given), or of the first measured control when none
did; every design's outcome and line are in ``details["designs"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from refusal_checks.stats.verdict import Outcome, Verdict

PAPER_DESIGN = "-paper-design"
# The short rule, for the reports (details["rule"]).
RULE = ("SUPPORTED when a genre control is SUPPORTED, none is REFUTED and the paper's design "
        "agrees; REFUTED when a genre control is REFUTED and none is SUPPORTED; otherwise "
        "INCONCLUSIVE")


def paper_design_id(claim: str) -> str:
    """``distinct-directions`` -> ``distinct-directions-paper-design``."""
    return claim + PAPER_DESIGN


def with_caveat(verdict: Verdict, caveat: str) -> Verdict:
    """``verdict`` with ``caveat`` appended to its reason and kept as ``details["caveat"]``."""
    reason = f"{verdict.reason}; {caveat}" if verdict.reason else caveat
    return replace(verdict, reason=reason, details={**verdict.details, "caveat": caveat})


def _short(verdict: Verdict) -> str:
    lo, hi = verdict.interval
    return (f"{verdict.outcome.value.upper()} {verdict.estimate:.3g} "
            f"[{lo:.3g}, {hi:.3g}]")


def _design_record(verdict: Verdict | str) -> dict[str, Any]:
    if isinstance(verdict, str):
        return {"outcome": "not measured", "reason": verdict}
    return {"outcome": verdict.outcome.value, "line": verdict.line()}


def from_genre_controls(paper: Verdict, controls: Mapping[str, Verdict | str], *,
                        paper_id: str, requires: Sequence[tuple[bool, str]] = ()) -> Verdict:
    """The claim's verdict from its genre controls and the paper's design (module docstring).

    Args:
        paper: The paper's design's verdict (the ``<claim>-paper-design`` claim's).
        controls: control name (a claim id where the control is a claim of its own) -> its
            verdict, or a sentence saying why it was not measured; in order of preference
            for the numbers the combined verdict shows.
        paper_id: The paper's design's claim id, for the reason.
        requires: ``(ok, message)`` pairs the claim's meaning needs (the model refuses at
            all), as :func:`refusal_checks.stats.decisions.verdict` takes them: a failure
            makes the verdict INCONCLUSIVE with its message first.

    Returns:
        A verdict with the deciding control's statistic, estimate, interval, threshold and n,
        the rule's reason, and ``details``: ``rule``, ``decided_by`` (a control name or
        None), ``designs`` (each design's outcome and line, or why it was not measured).
    """
    if not controls:
        raise ValueError("a claim needs at least one genre control to be decided.")
    measured = {name: v for name, v in controls.items() if isinstance(v, Verdict)}
    supported = [n for n, v in measured.items() if v.outcome is Outcome.SUPPORTED]
    refuted = [n for n, v in measured.items() if v.outcome is Outcome.REFUTED]
    paper_text = f"the paper's design ({paper_id}) reads {_short(paper)}"
    decided_by: str | None = None
    if supported and refuted:
        outcome = Outcome.INCONCLUSIVE
        reason = (f"the genre controls disagree: {', '.join(supported)} SUPPORTED, "
                  f"{', '.join(refuted)} REFUTED (at least one is fooled; the controls' "
                  f"numbers are in the details)")
    elif refuted:
        outcome, decided_by = Outcome.REFUTED, refuted[0]
        reason = (f"with genre cancelled, {decided_by} reads REFUTED "
                  f"({measured[decided_by].reason}); {paper_text}")
    elif supported and paper.outcome is Outcome.SUPPORTED:
        outcome, decided_by = Outcome.SUPPORTED, supported[0]
        reason = (f"with genre cancelled, {decided_by} reads SUPPORTED "
                  f"({measured[decided_by].reason}), and {paper_text}")
    elif supported:
        outcome, decided_by = Outcome.INCONCLUSIVE, supported[0]
        reason = (f"{decided_by} reads SUPPORTED but {paper_text}: the designs disagree (a "
                  f"control's benign side that differs from its category other than in "
                  f"refusal, or a benign pool whose genre pulls every direction alike)")
    else:
        outcome = Outcome.INCONCLUSIVE
        why = "; ".join(f"{name}: {'not measured: ' + v if isinstance(v, str) else v.reason}"
                        for name, v in controls.items())
        reason = (f"no genre control decides ({why}); {paper_text}, which counts genre as "
                  f"refusal and cannot decide alone")
    unmet = [message for ok, message in requires if not ok]
    if unmet:
        outcome, decided_by = Outcome.INCONCLUSIVE, None
        reason = "; ".join(unmet) + f" ({reason})"
    shown = measured.get(decided_by or "") or next(iter(measured.values()), None)
    details: dict[str, Any] = {
        "rule": RULE, "decided_by": decided_by if outcome is not Outcome.INCONCLUSIVE else None,
        "designs": {**{name: _design_record(v) for name, v in controls.items()},
                    paper_id: _design_record(paper)}}
    if shown is None:  # no control was measured at all: no numbers of the claim's own
        nan = float("nan")
        return Verdict(f"{paper.statistic}, genre cancelled (no genre control measured)", nan,
                       (nan, nan), paper.threshold, paper.comparison, 0, outcome, reason,
                       paper.level, paper.seed, paper.paper, details)
    return Verdict(shown.statistic, shown.estimate, shown.interval, shown.threshold,
                   shown.comparison, shown.n, outcome, reason, shown.level, shown.seed,
                   paper.paper, details)
