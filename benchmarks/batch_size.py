"""Generation and forward passes at several batch sizes, same prompts, same process.

``--refusal-batch-size`` (16 by default) sets every phase's batch. This measures, on one
model, what a phase would gain from another size: unsteered greedy replies (the behaviour
control's kind of work) and first-token log-probabilities (the scores' kind), each at every
size given, interleaved repeats, the minimum counts. Also counts how many replies differ
from those of the first size (another batch shape rounds float32 differently) and the
largest log-probability difference.

    .venv/bin/python benchmarks/batch_size.py --prompts 64 --tokens 16 --sizes 16,32,64
"""

from __future__ import annotations

import time

import numpy as np

from refusal_checks.prompts.load import bundled
from refusal_checks.prompts.sets import PromptSet
from common import arguments, load  # benchmarks/common.py


def main() -> None:
    parser = arguments(__doc__, prompts=64)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--sizes", default="16,32,64")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backend = load(args.model)
    collection = bundled()
    names = sorted(collection.categories)
    per = max(1, -(-args.prompts // len(names)))
    texts = tuple(t for n in names for t in collection.categories[n].refuse.texts[:per])
    prompts = PromptSet("bench/all", "bench", "refuse", texts[: args.prompts], "bench")
    gen: dict[int, list[float]] = {s: [] for s in sizes}
    fwd: dict[int, list[float]] = {s: [] for s in sizes}
    replies: dict[int, list[str]] = {}
    logprobs: dict[int, np.ndarray] = {}
    for _ in range(args.repeats):
        for size in sizes:
            started = time.perf_counter()
            replies[size] = backend.generate(prompts, args.tokens, batch_size=size)
            gen[size].append(time.perf_counter() - started)
            started = time.perf_counter()
            logprobs[size] = backend.last_logprobs(prompts, batch_size=size)
            fwd[size].append(time.perf_counter() - started)
    first = sizes[0]
    print(f"{args.model}, {len(prompts)} prompts, {args.tokens} new tokens, "
          f"{args.repeats} repeats (minimum)")
    for size in sizes:
        same = sum(a == b for a, b in zip(replies[first], replies[size]))
        diff = float(np.max(np.abs(logprobs[first] - logprobs[size])))
        print(f"  batch {size}: generate {min(gen[size]):.2f} s "
              f"({min(gen[first]) / min(gen[size]):.2f}x of batch {first}'s speed), "
              f"forward {min(fwd[size]):.2f} s ({min(fwd[first]) / min(fwd[size]):.2f}x); "
              f"replies identical to batch {first}: {same}/{len(prompts)}, "
              f"log-prob max |difference| {diff:.2e}")


if __name__ == "__main__":
    main()
