"""What the plugin keeps for one run, and the verdicts it collects from test reports.

Also what crosses pytest-xdist: each worker sends its records at its end
(:meth:`RunState.worker_output`), the controller merges them
(:meth:`RunState.merge_worker_output`) and writes the reports. pytest and the standard
library only at import; the library's modules are imported when first needed.
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The user property a claim test's verdict travels in (a JSON record), from the fixture
# that judged it to the collector, and to pytest-xdist's controller inside the report.
VERDICT_PROPERTY = "refusal_verdict"


@dataclass
class RunState:
    """Everything the plugin keeps for one run (in ``config.stash``)."""

    models: list[str]
    user_aliases: dict[str, Any]
    cache_option: Path | None = None  # --refusal-cache-dir, if given
    started: float = field(default_factory=time.time)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    model_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    costs: dict[str, Any] = field(default_factory=dict)  # model -> cost.CostLedger
    # model -> observations.Observations: what the run judged, scored and measured KL on
    # under each intervention (the reports' score_validation and damage sections)
    observations: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None  # the release gate's outcome, for the JSON report
    claims_collected: set[str] = field(default_factory=set)  # claim ids, also from workers
    order: dict[str, int] = field(default_factory=dict)  # nodeid -> collection position
    _cache_dir: Path | None = field(default=None, init=False, repr=False)

    @property
    def cache_dir(self) -> Path:
        """--refusal-cache-dir, else the library default, resolved on first use.

        Lazy because refusal_checks.cache.keys imports numpy, and this plugin loads in every
        pytest run of the environment, including runs that check no claims.
        """
        if self._cache_dir is None:
            if self.cache_option is not None:
                self._cache_dir = self.cache_option
            else:
                from refusal_checks.cache.keys import default_cache_dir

                self._cache_dir = default_cache_dir()
        return self._cache_dir

    def ledger(self, model: str) -> Any:
        """The model's :class:`refusal_checks.core.cost.CostLedger` (made on first use)."""
        from refusal_checks.core.cost import CostLedger

        return self.costs.setdefault(model, CostLedger())

    def observed(self, model: str) -> Any:
        """The model's :class:`refusal_checks.measure.observations.Observations` (made on first use)."""
        from refusal_checks.measure.observations import Observations

        return self.observations.setdefault(model, Observations())

    def worker_output(self) -> str:
        """What a pytest-xdist worker sends the controller: what only it knows, as JSON."""
        return json.dumps({
            "model_info": self.model_info, "timings": self.timings,
            "costs": {model: ledger.to_dict() for model, ledger in self.costs.items()},
            "observations": {model: records.to_dict()
                             for model, records in self.observations.items()},
            "claims": sorted(self.claims_collected)})

    def merge_worker_output(self, sent: str) -> None:
        """Merge one worker's :meth:`worker_output` (model records, timings, claims)."""
        from refusal_checks.plugin.session import merge_models

        data = json.loads(sent)
        merge_models(self.model_info, data["model_info"])
        for name, seconds in data["timings"].items():
            self.timings[name] = self.timings.get(name, 0.0) + seconds
        from refusal_checks.core.cost import CostLedger

        for model, phases in data.get("costs", {}).items():  # seconds add up over workers
            self.ledger(model).merge(CostLedger.from_dict(phases))
        from refusal_checks.measure.observations import Observations

        for model, records in data.get("observations", {}).items():
            self.observed(model).merge(Observations.from_dict(records))
        self.claims_collected.update(data["claims"])


STATE = pytest.StashKey[RunState]()


def item_phase(item: pytest.Item, name: str) -> AbstractContextManager[Any]:
    """A phase of ``item``'s model's cost ledger; a no-op for a test without a model."""
    state = item.config.stash.get(STATE, None)
    callspec = getattr(item, "callspec", None)
    model = callspec.params.get("model_name") if callspec is not None else None
    if state is None or not isinstance(model, str):
        return nullcontext()
    return state.ledger(model).phase(name)


class VerdictCollector:
    """Collects verdicts from test reports, and what the JSON report and the gate need.

    Reports, not items: under pytest-xdist the controller only sees reports (with their
    ``user_properties``), so this works with and without workers. What only the process
    that ran the fixtures knows (model records, timings, the claims collected) workers
    send to the controller at their end (``workeroutput``), which writes the reports.
    """

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.seen: set[str] = set()
        from refusal_checks.plugin.session import Completeness

        self.completeness = Completeness()

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker("claim")
        if marker is not None and marker.args:
            self.state.claims_collected.add(str(marker.args[0]))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.state.order = {item.nodeid: i for i, item in enumerate(session.items)}

    @pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: xdist may not be installed
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        if not self.state.order:  # every worker collects the same tests in the same order
            self.state.order = {nodeid: i for i, nodeid in enumerate(ids)}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.completeness.collect_failed()

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.completeness.keyboard_interrupt(excinfo.exconly().strip())

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """Merge a worker's model records, timings and claims (pytest-xdist controller)."""
        sent = getattr(node, "workeroutput", {}).get("refusal_checks")
        if sent:
            self.state.merge_worker_output(sent)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call"):
            return
        for name, value in report.user_properties:
            if name == VERDICT_PROPERTY and value not in self.seen:
                self.seen.add(value)
                record = json.loads(value)
                record["duration"] = report.duration
                self.state.verdicts.append(record)
