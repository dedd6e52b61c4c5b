"""Arditi et al.'s direction search: the filter order vs the full search, same model, same process.

The full search scores every candidate (layer x post-instruction position) three times on
the validation prompts: bypass (harmful, ablated at every layer), induce (harmless, steered
at the candidate's layer) and KL (harmless, ablated). The filter order scores induce for
every candidate and bypass and KL only where induce passes and for the 5 nearest to passing
(:mod:`refusal_checks.measure.selection`). Both runs start from the same cache holding only
the build activations (so neither times them, and neither is served the other's scores)
and an empty prefix store; interleaved repeats, the minimum counts. Checks that both select
the same candidate and direction (bitwise) and that every per-prompt score both compute is
bitwise identical, and prints those rows.

The prompts are the bundled harmful categories' and the benign pool's train halves, NOT
filtered by the model's own replies as the claims filter them (that needs a generation per
prompt): this measures the search's cost, not the protocol's prompt choice. Validation
``--prompts`` per side as the claims use (16); ``--build`` prompts per side build the
candidates.

    nice -n 10 .venv/bin/python benchmarks/arditi_order.py --model qwen-coder-0.5b \\
        --layers 8,12,16 --repeats 1
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from refusal_checks.cache.store import ArrayCache
from refusal_checks.core.cost import CostLedger
from refusal_checks.measure.arditi import selection_prompts
from refusal_checks.measure.candidates import build_activations
from refusal_checks.measure.protocol import HARMFUL_CATEGORIES
from refusal_checks.measure.selection import Selection, select_direction
from refusal_checks.models.prefix_store import PrefixStore
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py

ROWS = {"bypass": "bypass_scores", "induce": "induce_scores", "kl": "kl_values"}


def _prompts(per_side: int, build: int) -> Any:
    collection = bundled()
    harmful = {c: collection.categories[c].refuse for c in HARMFUL_CATEGORIES}
    everyone = {c: np.ones(len(s), bool) for c, s in harmful.items()}  # "all refused"
    answered = [(t, False) for t in collection.benign.texts]
    chosen = selection_prompts(harmful, everyone, collection.benign, answered,
                               per_side=per_side)
    share = max(1, build // len(chosen.build_harmful))
    return replace(chosen, build_harmful=tuple(s.head(share) for s in chosen.build_harmful),
                   build_harmless=tuple(s.head(build) for s in chosen.build_harmless))


def _compare(full: Selection, filt: Selection) -> dict[str, Any]:
    """Same site, same direction bitwise, and each per-prompt row both computed."""
    same_site = (full.layer, full.position) == (filt.layer, filt.position)
    same_direction = (full.direction is None and filt.direction is None) or (
        full.direction is not None and filt.direction is not None
        and full.direction.tobytes() == filt.direction.tobytes())
    rows, identical = [], {}
    for k, (ours, theirs) in enumerate(zip(filt.candidates, full.candidates)):
        row: dict[str, Any] = {"layer": ours.layer, "position": ours.position}
        for name, field in ROWS.items():
            if name in ours.skipped:
                row[name] = {"full": getattr(theirs, name), "filter": None}
                continue
            same = np.array_equal(getattr(filt, field)[k], getattr(full, field)[k])
            identical.setdefault(name, [0, 0])
            identical[name][0] += same
            identical[name][1] += 1
            row[name] = {"full": getattr(theirs, name), "filter": getattr(ours, name),
                         "bitwise": bool(same)}
        rows.append(row)
    return {"same_site": same_site, "same_direction": same_direction,
            "identical_rows": identical, "rows": rows}


def main() -> None:
    parser = arguments(__doc__, prompts=16)
    parser.add_argument("--layers", default="8,12,16", help="candidate layers (restricted)")
    parser.add_argument("--build", type=int, default=48, help="build prompts per side")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    backend = load(args.model)
    prompts = _prompts(args.prompts, args.build)
    layers = [int(x) for x in args.layers.split(",")]
    texts = [t for s in prompts.build_harmful + prompts.build_harmless for t in s.texts]
    positions = sorted(backend.post_instruction_positions(texts))
    root = Path(tempfile.mkdtemp(prefix="arditi-order-"))
    try:
        base = root / "base"
        for sets in (prompts.build_harmful, prompts.build_harmless):
            build_activations(backend, sets, layers, positions, ArrayCache(base, "scores"),
                              args.batch_size)
        times: dict[str, list[float]] = {"full": [], "filter": []}
        results: dict[str, Selection] = {}
        counts: dict[str, Any] = {}
        for repeat in range(args.repeats):
            for order in ("full", "filter"):
                folder = root / f"{order}-{repeat}"
                shutil.copytree(base, folder)
                backend.prefix = PrefixStore()
                ledger = CostLedger()
                started = time.perf_counter()
                with ledger.phase(order):
                    results[order] = select_direction(
                        backend, prompts, layers=layers, positions=positions,
                        cache=ArrayCache(folder, "scores"), batch_size=args.batch_size,
                        order=order)
                times[order].append(time.perf_counter() - started)
                counts[order] = ledger.phases[order]
                print(f"  {order}: {times[order][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    full, filt = results["full"], results["filter"]
    check = _compare(full, filt)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["filter"] / best["full"]
    for row in check["rows"]:
        cells = "  ".join(
            f"{name} " + (f"{row[name]['full']:.4f} / not computed" if row[name]["filter"]
                          is None else f"{row[name]['full']:.4f} / {row[name]['filter']:.4f}"
                          + ("" if row[name]["bitwise"] else " DIFFERS"))
            for name in ROWS)
        print(f"  layer {row['layer']:>2} position {row['position']}: {cells}")
    same = ", ".join(f"{k} {a}/{b}" for k, (a, b) in check["identical_rows"].items())
    print(f"{backend.name}, layers {layers} x positions {positions} ({len(full.candidates)} "
          f"candidates), validate {prompts.sizes()['val_harmful']}+"
          f"{prompts.sizes()['val_harmless']}, batch {args.batch_size}: full {best['full']:.1f} s"
          f"   filter {best['filter']:.1f} s   ratio {ratio:.2f}x   selected full "
          f"{(full.layer, full.position)} filter {(filt.layer, filt.position)}, same "
          f"direction {check['same_direction']}   rows computed by both, bitwise identical: "
          f"{same}   prompts forwarded full {counts['full'].prompts} filter "
          f"{counts['filter'].prompts} (skipped {counts['filter'].prompts_skipped}; filter "
          f"order completed {list(filt.completed) or 'nothing'})")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "model": backend.name, "layers": layers, "positions": positions,
            "times": times, "ratio": ratio, "protocol": {"full": full.protocol(),
                                                         "filter": filt.protocol()},
            **check}, indent=1, default=float))


if __name__ == "__main__":
    main()
