"""The chat template's shared head computed once per edit vs every prompt's full input.

Runs the claims' four kinds of model work on the same bundled prompts (a mix of every
category's should-refuse prompts and benign ones, as the claims read them) twice in one
process, interleaved, with the head reused and with it switched off (the path before it
existed): resid_pre at every layer (the activations phase), first-token scores unedited,
under steers at the sweep's layer and under an all-layer ablation (sweep, Arditi, claims),
and greedy replies, steered and plain. Each repeat starts with no head kept, so its time
includes computing it. The minimum over repeats counts; wall and process CPU seconds are
both printed (on a loaded machine CPU seconds are the steadier figure). Also prints how
close the outputs are and the head's share of the prompts' tokens, and that share for
every installed model given with ``--share``.

    .venv/bin/python benchmarks/shared_head.py --model qwen-coder-0.5b --prompts 32
    .venv/bin/python benchmarks/shared_head.py --share qwen-coder-0.5b smollm2-135m
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from refusal_checks.measure.activations import paper_layer
from refusal_checks.models.interventions import Ablate, steer
from refusal_checks.models.nnsight.head import SharedHead
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py


def mixed_prompts(n: int, per_category: int = 2):
    collection = bundled()
    texts = [t for c in collection.categories.values()
             for t in (*c.refuse.texts[:per_category], *c.matched.texts[:per_category])]
    texts += list(collection.benign.texts)
    base = collection.benign
    return dataclasses.replace(base, name="mix", texts=tuple(texts[:n]), subgenres=(), topics=())


def share(backend, prompts) -> tuple[int, float]:
    """The head's length and its share of all tokens of the prompts."""
    ids = backend.encode(prompts.texts)
    h = len(backend.head.ids)
    return h, h * len(ids) / sum(len(row) for row in ids)


def main() -> None:
    parser = arguments(__doc__, prompts=32)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--share", nargs="*", default=None,
                        help="only print the head's share of the bundled prompts for these models")
    args = parser.parse_args()
    everything = mixed_prompts(10_000, per_category=10_000)
    if args.share is not None:
        for model in args.share:
            backend = load(model)
            h, part = share(backend, everything)
            print(f"{model}: head {h} tokens, {part:.0%} of the tokens of "
                  f"{len(everything)} bundled prompts ({backend.info['shared_head']})")
        return
    backend = load(args.model)
    prompts = mixed_prompts(args.prompts)
    layer = paper_layer(backend.n_layers)
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(backend.d_model)
    norm = 20.0
    steers = [steer(d, s, layer, norm) for d in rng.standard_normal((2, backend.d_model))
              for s in (0.5, 1.0)]
    work = {
        "activations, all layers": lambda: backend.residual_stream(
            prompts, range(backend.n_layers), [-1, -2], batch_size=args.batch_size),
        "scores, unedited": lambda: backend.last_logprobs(prompts, batch_size=args.batch_size),
        f"scores, {len(steers)} steers at layer {layer}": lambda: [
            backend.last_logprobs(prompts, intervention=e, batch_size=args.batch_size)
            for e in steers],
        "scores, ablated": lambda: backend.last_logprobs(
            prompts, intervention=Ablate(direction), batch_size=args.batch_size),
        f"replies, {args.tokens} tokens, plain": lambda: backend.generate(
            prompts, args.tokens, batch_size=args.batch_size),
        f"replies, {args.tokens} tokens, steered": lambda: backend.generate(
            prompts, args.tokens, intervention=steers[0], batch_size=args.batch_size),
    }
    reused = backend.head
    h, part = share(backend, prompts)
    print(f"{args.model}, {len(prompts)} prompts, batch {args.batch_size}: head {h} tokens, "
          f"{part:.0%} of the prompts' tokens")
    for name, job in work.items():
        best = {"full": [np.inf, np.inf], "head": [np.inf, np.inf]}
        out = {}
        for _ in range(args.repeats):
            for mode in ("full", "head"):
                backend.head = (SharedHead([], off="benchmark baseline") if mode == "full"
                                else SharedHead(reused.ids))
                backend.prefix.max_bytes = 0  # measure the head alone
                wall, cpu = time.perf_counter(), time.process_time()
                out[mode] = job()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                best[mode] = [min(best[mode][0], wall), min(best[mode][1], cpu)]
        a, b = out["full"], out["head"]
        if isinstance(a, list) and a and isinstance(a[0], str):
            same = f"identical replies {sum(x == y for x, y in zip(a, b))}/{len(a)}"
        else:
            diff = max(float(np.abs(np.asarray(x) - np.asarray(y)).max())
                       for x, y in zip(a if isinstance(a, list) else [a],
                                       b if isinstance(b, list) else [b]))
            same = f"max |difference| {diff:.1e}"
        print(f"  {name}: full {best['full'][0]:.1f} s ({best['full'][1]:.1f} cpu)   head "
              f"{best['head'][0]:.1f} s ({best['head'][1]:.1f} cpu)   ratio "
              f"{best['head'][0] / best['full'][0]:.2f}x wall, "
              f"{best['head'][1] / best['full'][1]:.2f}x cpu   {same}")
    backend.head = reused


if __name__ == "__main__":
    main()
