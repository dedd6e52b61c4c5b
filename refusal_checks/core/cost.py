"""Where a run's time went: seconds and cache traffic per phase of model work.

A phase is a named stretch of work ("activations", "sweep scores", a claim's own
interventions). :func:`phase` times it; the library's model calls (activations, replies,
refusal scores, KL) :func:`note` what they took from the cache and what they computed, into
the innermost open phase. Phases nest, and a phase's seconds exclude the phases opened
inside it, so the seconds of all phases add up to the time they covered, counted once.

The plugin opens one phase per test setup and per claim on the model's :class:`CostLedger`;
fixtures open theirs inside with ``with phase("sweep scores"):``. Without an open phase
(the library used outside pytest) both are no-ops. Standard library only: the plugin
imports this in every pytest run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# What each phase counts besides its seconds (JSON keys of the report's cost_profile).
COUNTS = {
    "hits": "cache entries served (a prompt set's activations, a setting's replies or scores)",
    "computed": "cache entries computed (misses, or no cache)",
    "batches_resumed": "batches of half-finished entries an interrupted run left behind",
    "prompts": "prompts forwarded (activations, refusal scores, KL: one pass each)",
    "replies": "replies generated",
    "replies_shared": "replies served as the token prefix of a generation at a longer (or "
                      "the same) budget, none generated for them",
    "prefix_reuses": "steered batches that reused the unedited blocks below the steered one",
    "shared_head": "prompt passes that ran only their tokens after the chat template's shared "
                   "head (its keys and values computed once per edit)",
    "prompts_skipped": "prompt passes a search left out as unable to change its result "
                       "(Arditi's filter order: bypass and KL of candidates failing induce)",
}


@dataclass
class PhaseCost:
    """One phase's seconds (its own, without nested phases) and counts."""

    seconds: float = 0.0
    hits: int = 0
    computed: int = 0
    batches_resumed: int = 0
    prompts: int = 0
    replies: int = 0
    prefix_reuses: int = 0
    prompts_skipped: int = 0
    shared_head: int = 0
    replies_shared: int = 0

    def add(self, other: "PhaseCost") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(eq=False)  # identity: two open frames may look alike
class _Frame:
    ledger: "CostLedger"
    name: str
    nested: float = 0.0  # seconds spent in phases opened inside this one


_open: list[_Frame] = []  # innermost last; pytest runs one test at a time per process


@dataclass
class CostLedger:
    """The phases of one model's work in one process (pytest-xdist: one per worker, merged)."""

    phases: dict[str, PhaseCost] = field(default_factory=dict)

    def entry(self, name: str) -> PhaseCost:
        return self.phases.setdefault(name, PhaseCost())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time ``name`` on this ledger; counts noted meanwhile go to it."""
        frame = _Frame(self, name)
        _open.append(frame)
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            _open.remove(frame)
            self.entry(name).seconds += max(0.0, elapsed - frame.nested)
            if _open:
                _open[-1].nested += elapsed

    def merge(self, other: "CostLedger") -> None:
        for name, cost in other.phases.items():
            self.entry(name).add(cost)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Raw phases, for sending from a pytest-xdist worker (see :meth:`from_dict`)."""
        return {name: asdict(cost) for name, cost in self.phases.items()}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, Any]]) -> "CostLedger":
        known = {f.name for f in fields(PhaseCost)}
        return cls({name: PhaseCost(**{k: v for k, v in cost.items() if k in known})
                    for name, cost in data.items()})

    def profile(self) -> dict[str, Any]:
        """The report's ``cost_profile``: each phase with its share of the profiled seconds."""
        total = sum(cost.seconds for cost in self.phases.values())
        phases = {}
        for name, cost in self.phases.items():
            record: dict[str, Any] = asdict(cost)
            record["seconds"] = round(cost.seconds, 3)
            record["share"] = round(share(cost.seconds, total), 4)
            phases[name] = record
        totals = PhaseCost()
        for cost in self.phases.values():
            totals.add(cost)
        summed: dict[str, Any] = asdict(totals)
        summed["seconds"] = round(total, 3)
        return {"total_seconds": round(total, 3), "phases": phases, "totals": summed}


def share(seconds: float, total: float) -> float:
    """``seconds / total``, 0 when nothing was timed."""
    return seconds / total if total > 0 else 0.0


@contextmanager
def phase(name: str) -> Iterator[None]:
    """A phase on the ledger of the innermost open phase (a no-op when none is open)."""
    if not _open:
        yield
        return
    with _open[-1].ledger.phase(name):
        yield


def note(**counts: int) -> None:
    """Add counts (keys of :data:`COUNTS`) to the innermost open phase, if any."""
    if not _open:
        return
    cost = _open[-1].ledger.entry(_open[-1].name)
    for key, value in counts.items():
        if key not in COUNTS:
            raise ValueError(f"unknown cost count {key!r}; known: {', '.join(COUNTS)}")
        setattr(cost, key, getattr(cost, key) + int(value))


# -- rendering: one row format for the terminal summary and the HTML report ----------------

HEADER = ("phase", "seconds", "share", "cached/computed", "resumed", "prompts", "replies")


def table_rows(profile: dict[str, Any], min_share: float = 0.0) -> list[list[str]]:
    """Rows of :data:`HEADER`, slowest phase first, then a total row.

    Phases under ``min_share`` of the time without cache traffic (statistics only) are
    summed into one row.
    """
    phases = sorted((profile.get("phases") or {}).items(),
                    key=lambda item: (-float(item[1].get("seconds", 0)), item[0]))
    small = [cost for _, cost in phases
             if float(cost.get("share", 0)) < min_share
             and not (cost.get("computed") or cost.get("hits"))]
    small = small if len(small) > 1 else []
    rows = [_row(name, cost) for name, cost in phases if not any(cost is c for c in small)]
    if small:
        rest = {key: sum(cost.get(key, 0) for cost in small) for key in ("seconds", "share",
                                                                          *COUNTS)}
        rows.append(_row(f"{len(small)} more under {min_share:.0%} each", rest))
    totals = dict(profile.get("totals") or {}, share=1.0 if phases else 0.0)
    return rows + [_row("total", totals)]


def _row(name: str, cost: dict[str, Any]) -> list[str]:
    seconds = float(cost.get("seconds", 0))
    return [name, f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}",
            f"{float(cost.get('share', 0)):.0%}",
            f"{int(cost.get('hits', 0))}/{int(cost.get('computed', 0))}",
            str(int(cost.get("batches_resumed", 0))), str(int(cost.get("prompts", 0))),
            str(int(cost.get("replies", 0)))]


def render(profiles: dict[str, dict[str, Any]], *, width: int = 80,
           color: bool = False) -> str:
    """The terminal's "where the time went" tables, one per model (rich renders them).

    Compact: phases under 1% without model work share a row, and the resumed column
    shows only when an interrupted run left batches behind (the JSON report has it all).
    """
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 60), force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    for model, profile in profiles.items():
        rows = table_rows(profile, min_share=0.01)
        keep = [i for i, name in enumerate(HEADER)
                if name != "resumed" or (profile.get("totals") or {}).get("batches_resumed")]
        table = Table(title=f"Where the time went: {model}", expand=False,
                      box=box.SIMPLE_HEAD, padding=(0, 0))
        titles = [HEADER[i].replace("/", "/\n") for i in keep]  # cached/ over computed
        widths = [max(len(part) for part in [*title.split("\n"), *(r[i] for r in rows)])
                  for title, i in zip(titles, keep)]
        # Numbers keep their width; a long phase name is the one cut short.
        widths[0] = max(12, min(widths[0], console.width - sum(widths[1:]) - len(keep) - 1))
        for n, (title, wide) in enumerate(zip(titles, widths)):
            table.add_column(title, justify="right" if n else "left", no_wrap=True,
                             overflow="ellipsis", min_width=wide, max_width=wide)
        for n, row in enumerate(rows):
            table.add_row(*(row[i] for i in keep), end_section=n == len(rows) - 2)
        console.print(table)
    console.print("cached/computed: cache entries served / computed; prompts forwarded; "
                  "replies generated; resumed: batches an interrupted run had finished",
                  highlight=False, markup=False)
    return buffer.getvalue()
