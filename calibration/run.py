"""Calibration study: how often does each geometry claim say SUPPORTED when it is false?

Plants worlds where a claim is false (its null) or true (its effect), at the sample sizes
the claims really use (11 categories, 64 refused + 64 matched prompts each, 128 benign;
--refusal-bootstrap 500 and --refusal-seed 0 as in a real run), judges each world exactly
as the claim does (refusal_checks.calibration.geometry) and prints, per claim, the false-SUPPORTED
rate under each null (goal <= 5%) and the power under the effect (goal >= 90%), with 95%
Wilson intervals, then every scenario x claim.

    .venv/bin/python calibration/run.py                 # 200 worlds per scenario
    .venv/bin/python calibration/run.py --quick         # 40 worlds per scenario
    .venv/bin/python calibration/run.py --scenarios shared,real-like \
        --claims distinct-under-matched-control --worlds 20 --json out.json
    .venv/bin/python calibration/run.py --scenarios behaviour-shared,behaviour-distinct \
        --claims distinct-directions,distinct-under-behaviour-control   # the genre world
    .venv/bin/python calibration/run.py --behaviour --jobs 2   # the 8 behavioural claims
    .venv/bin/python calibration/run.py --behaviour --behaviour-scenarios half-kept --worlds 20
    .venv/bin/python calibration/run.py --behaviour --behaviour-claims \
        ablation-is-category-selective --worlds 200
    .venv/bin/python calibration/run.py --behaviour --staged --worlds 200   # staged vs fixed
    .venv/bin/python calibration/run.py --behaviour --against-truth --worlds 200 \
        --behaviour-scenarios boundary-selective-genre,boundary-selective-matched
    .venv/bin/python calibration/run.py --style --jobs 2       # the 5 style claims
    .venv/bin/python calibration/run.py --style --style-scenarios styled,plain --worlds 20
    .venv/bin/python calibration/run.py --oracle --worlds 100 # the 2 oracle claims
    .venv/bin/python calibration/run.py --sae --worlds 100 --jobs 2   # the 3 SAE claims
    .venv/bin/python calibration/run.py --sae-steering --worlds 100   # sae-steering-same-knob

--behaviour judges the behavioural claims (claims/test_single_direction.py,
claims/test_category_steering.py) on their own planted worlds
(refusal_checks.calibration.behaviour.BEHAVIOUR_SCENARIOS), measured as fixtures/behaviour.py
measures (refusal_checks.measure.protocol: staged probes from 8 held-out prompts per
category and 32 benign, the sweep grid), instead of the geometry claims.

--staged (with --behaviour) judges every world twice, by the fixed probes and by the staged
probes of refusal_checks/measure/staged.py (as the claims run them), and prints both designs' false
SUPPORTED / REFUTED rates beside each other with the looks reached and the prompts read.

--against-truth (with --behaviour) judges ablation-is-category-selective and its paper's
design against each world's own truth (their statistics on 500 fresh prompts per category,
refusal_checks.calibration.selectivity): a SUPPORTED is false only where that truth is at or
below the margin, a REFUTED only where it is above.

--style judges the style claims (claims/test_style.py) on their planted worlds
(refusal_checks.calibration.style.STYLE_SCENARIOS), measured as fixtures/style.py measures
(the shared probe, rate-matched strengths, all-MiniLM-L6-v2 + lexical features, 500
permutations and 500 bootstrap replicates); every style claim is judged in every world.

--oracle judges oracle-agreement and over-refusal-is-a-different-axis (claims/test_oracle.py)
on their planted worlds (refusal_checks.calibration.oracle.ORACLE_SCENARIOS), measured as
fixtures/oracle.py measures (judged replies to every harmful and over-refusal prompt, the
refusal_behaviour probe's benign verdicts, 500 bootstrap replicates).

--sae judges the SAE claims (claims/test_sae.py) on planted sparse-feature worlds with
the ideal SAE of their dictionary (refusal_checks.calibration.sae.SAE_SCENARIOS).

--sae-steering judges sae-steering-same-knob (claims/test_sae.py) on one-knob behaviour
worlds with a planted SAE whose refusal latents write along the knob or off it
(refusal_checks.calibration.sae_steering.SAE_STEERING_SCENARIOS), measured as the claim's
fixtures measure (the shared-knob probes, stages and sweep grid).

One process by default; --jobs N spreads worlds over N processes. Each process keeps
BLAS to one thread: on a small shared machine multi-threaded BLAS made a world 5x slower.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported, also in worker processes

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

from refusal_checks.calibration import behaviour as behaviour_calibration  # noqa: E402
from refusal_checks.calibration import known_answers  # noqa: E402
from refusal_checks.calibration import oracle as oracle_calibration  # noqa: E402
from refusal_checks.calibration import sae as sae_calibration  # noqa: E402
from refusal_checks.calibration import sae_steering as sae_steering_calibration  # noqa: E402
from refusal_checks.calibration import staged as staged_calibration  # noqa: E402
from refusal_checks.calibration import style as style_calibration  # noqa: E402
from refusal_checks.calibration.behaviour import BEHAVIOUR_SCENARIOS  # noqa: E402
from refusal_checks.calibration.measurements import BEHAVIOUR_CLAIM_IDS  # noqa: E402
from refusal_checks.calibration.geometry import CLAIM_IDS, DEFAULT_BOOTSTRAP  # noqa: E402
from refusal_checks.stats.verdict import Outcome  # noqa: E402

FULL_WORLDS = 200
QUICK_WORLDS = 40


def _names(known: list[str] | tuple[str, ...], what: str):
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {unknown or text!r}. Known: {', '.join(known)}.")
        return names
    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer.")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_WORLDS} worlds per scenario instead of {FULL_WORLDS}")
    p.add_argument("--worlds", type=_positive, default=None,
                   help="worlds per scenario (overrides --quick)")
    p.add_argument("--scenarios", type=_names(list(known_answers.SCENARIOS), "scenarios"),
                   default=list(known_answers.SCENARIOS), help="comma-separated scenario names")
    p.add_argument("--claims", type=_names(CLAIM_IDS, "claims"), default=list(CLAIM_IDS),
                   help="comma-separated claim ids")
    p.add_argument("--n-boot", type=_positive, default=DEFAULT_BOOTSTRAP,
                   help="bootstrap replicates per study (the claims' default: 500)")
    p.add_argument("--jobs", type=_positive, default=1, help="worker processes")
    p.add_argument("--first-seed", type=_positive, default=1, help="seed of the first world")
    p.add_argument("--json", type=Path, default=None, help="also write the counts here")
    p.add_argument("--behaviour", action="store_true",
                   help="calibrate the 8 behavioural claims instead of the geometry claims")
    p.add_argument("--behaviour-scenarios",
                   type=_names(list(BEHAVIOUR_SCENARIOS), "behaviour scenarios"),
                   default=list(BEHAVIOUR_SCENARIOS),
                   help="comma-separated behaviour scenario names (with --behaviour)")
    p.add_argument("--behaviour-claims",
                   type=_names(list(BEHAVIOUR_CLAIM_IDS), "behavioural claims"),
                   default=None, help="only these behavioural claim ids (with --behaviour)")
    p.add_argument("--corrected", action="store_true",
                   help="coverage of the judge-error-corrected refusal rates (--refusal-labels) "
                        "instead of the geometry claims")
    p.add_argument("--corrected-evaluation-only", action="store_true",
                   help="with --corrected: only the cells of the labels' evaluation half "
                        "(same seeds as in the whole grid)")
    p.add_argument("--staged", action="store_true",
                   help="with --behaviour: the fixed and the staged probes side by side")
    p.add_argument("--against-truth", action="store_true",
                   help="with --behaviour: ablation-is-category-selective and its paper's "
                        "design judged against each world's own truth")
    for flag, label, count, scenarios in (
            ("style", "style", 5, style_calibration.STYLE_SCENARIOS),
            ("oracle", "oracle", 2, oracle_calibration.ORACLE_SCENARIOS),
            ("sae", "SAE", 3, sae_calibration.SAE_SCENARIOS),
            ("sae-steering", "SAE steering", 1,
             sae_steering_calibration.SAE_STEERING_SCENARIOS)):
        p.add_argument(f"--{flag}", action="store_true",
                       help=f"calibrate the {count} {label} claim{'s' * (count > 1)} "
                            "instead of the geometry claims")
        p.add_argument(f"--{flag}-scenarios",
                       type=_names(list(scenarios), f"{label} scenarios"),
                       default=list(scenarios),
                       help=f"comma-separated {label} scenario names (with --{flag})")
    p.add_argument("--sae-claims", type=_names(list(sae_calibration.SAE_CLAIM_IDS),
                                               "SAE claims"), default=[],
                   help="with --sae: comma-separated claim ids to judge (default: all three)")
    return p


def _payload(worlds: int, seconds: float, results: dict, **extra: object) -> dict:
    return {
        "worlds": worlds, "seconds": round(seconds, 1), **extra,
        "results": {
            name: {claim: {"counts": dict(t.counts), "n": t.n,
                           "supported": t.rate(Outcome.SUPPORTED)[0],
                           "mean_estimate": sum(t.estimates) / max(len(t.estimates), 1)}
                   for claim, t in tallies.items()}
            for name, tallies in results.items()},
    }


def study_main(args: argparse.Namespace, worlds: int, what: str, run, scenarios: list[str],
               known: dict, table_lines) -> int:
    """Run the behavioural or style study, print its scenarios and table, save the JSON."""
    started = time.perf_counter()
    results = run(scenarios, worlds, first_seed=args.first_seed, jobs=args.jobs)
    seconds = time.perf_counter() - started
    print(f"{what}: {worlds} worlds per scenario, jobs={args.jobs}, {seconds:.0f} s\n")
    width = max(len(name) for name in known) + 1
    for name in scenarios:
        print(f"  {name:{width}} {known[name].truth}")
    print()
    print("\n".join(table_lines(results)))
    if args.json is not None:
        args.json.write_text(json.dumps(_payload(worlds, seconds, results), indent=2))
    return 0


def staged_main(args: argparse.Namespace, worlds: int) -> int:
    started = time.perf_counter()
    results = staged_calibration.run_comparison(args.behaviour_scenarios, worlds,
                                                first_seed=args.first_seed, jobs=args.jobs,
                                                only=args.behaviour_claims)
    seconds = time.perf_counter() - started
    print(f"staged vs fixed probes: {worlds} worlds per scenario, jobs={args.jobs}, "
          f"{seconds:.0f} s\n")
    print("\n".join(staged_calibration.comparison_lines(results)))
    if args.json is not None:
        args.json.write_text(json.dumps({
            "worlds": worlds, "seconds": round(seconds, 1),
            "results": {name: {claim: vars(c) for claim, c in rows.items()}
                        for name, rows in results.items()}}, indent=2))
    return 0


def truth_main(args: argparse.Namespace, worlds: int) -> int:
    from refusal_checks.calibration import selectivity

    started = time.perf_counter()
    results = selectivity.run_against_truth(args.behaviour_scenarios, worlds,
                                            first_seed=args.first_seed, jobs=args.jobs)
    seconds = time.perf_counter() - started
    print(f"ablation-is-category-selective against each world's truth: {worlds} worlds per "
          f"scenario, jobs={args.jobs}, {seconds:.0f} s\n")
    print("\n".join(selectivity.truth_lines(results)))
    if args.json is not None:
        args.json.write_text(json.dumps({"worlds": worlds, "seconds": round(seconds, 1),
                                         "results": selectivity.truth_payload(results)},
                                        indent=2))
    return 0


def behaviour_main(args: argparse.Namespace, worlds: int) -> int:
    if args.staged:
        return staged_main(args, worlds)
    if args.against_truth:
        return truth_main(args, worlds)

    def run(*a, **kw):
        return behaviour_calibration.run_behaviour(*a, only=args.behaviour_claims, **kw)

    return study_main(args, worlds, "behavioural claims", run,
                      args.behaviour_scenarios, BEHAVIOUR_SCENARIOS,
                      behaviour_calibration.behaviour_table_lines)


def style_main(args: argparse.Namespace, worlds: int) -> int:
    from refusal_checks.errors import RefusalChecksError

    try:
        return study_main(args, worlds, "style claims", style_calibration.run_style,
                          args.style_scenarios, style_calibration.STYLE_SCENARIOS,
                          style_calibration.style_table_lines)
    except RefusalChecksError as error:  # the sentence encoder's weights are missing
        print(f"the style claims embed refusals with all-MiniLM-L6-v2: {error}",
              file=sys.stderr)
        return 2


def corrected_main(args: argparse.Namespace, worlds: int) -> int:
    from refusal_checks.calibration import corrected as corrected_calibration

    started = time.perf_counter()
    cells = corrected_calibration.run_corrected(
        worlds, first_seed=args.first_seed,
        evaluation_only=args.corrected_evaluation_only)
    seconds = time.perf_counter() - started
    print(f"corrected refusal rates: {worlds} worlds per cell, {seconds:.0f} s\n")
    print("\n".join(corrected_calibration.table_lines(cells)))
    if args.json is not None:
        args.json.write_text(json.dumps({"worlds": worlds, "seconds": round(seconds, 1),
                                         "cells": [vars(c) for c in cells]}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    worlds = args.worlds or (QUICK_WORLDS if args.quick else FULL_WORLDS)
    if args.behaviour + args.style + args.oracle + args.sae + args.sae_steering \
            + args.corrected > 1:
        parser().error("--behaviour, --style, --oracle, --sae, --sae-steering and --corrected "
                       "are separate studies: give one of them.")
    if args.corrected:
        return corrected_main(args, worlds)
    if args.staged and not args.behaviour:
        parser().error("--staged compares the behavioural claims' probes: add --behaviour.")
    if args.against_truth and not args.behaviour:
        parser().error("--against-truth judges a behavioural claim: add --behaviour.")
    if args.sae:
        return study_main(args, worlds, "SAE claims",
                          partial(sae_calibration.run_sae, only=args.sae_claims),
                          args.sae_scenarios, sae_calibration.SAE_SCENARIOS,
                          sae_calibration.sae_table_lines)
    if args.sae_steering:
        return study_main(args, worlds, "SAE steering claim",
                          sae_steering_calibration.run_sae_steering,
                          args.sae_steering_scenarios,
                          sae_steering_calibration.SAE_STEERING_SCENARIOS,
                          sae_steering_calibration.table_lines)
    if args.oracle:
        return study_main(args, worlds, "oracle claims", oracle_calibration.run_oracle,
                          args.oracle_scenarios, oracle_calibration.ORACLE_SCENARIOS,
                          oracle_calibration.oracle_table_lines)
    if args.behaviour:
        return behaviour_main(args, worlds)
    if args.style:
        return style_main(args, worlds)
    started = time.perf_counter()
    results = known_answers.run(args.scenarios, worlds, claims=args.claims,
                                n_boot=args.n_boot, first_seed=args.first_seed, jobs=args.jobs)
    seconds = time.perf_counter() - started
    print(f"{worlds} worlds per scenario, n_boot={args.n_boot}, jobs={args.jobs}, "
          f"{seconds:.0f} s\n")
    for name in args.scenarios:
        print(f"  {name:20} {known_answers.SCENARIOS[name].truth}")
    print()
    print("\n".join(known_answers.table_lines(results)))
    print()
    print("\n".join(known_answers.matrix_lines(results)))
    if args.json is not None:
        args.json.write_text(json.dumps(_payload(worlds, seconds, results, n_boot=args.n_boot),
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
