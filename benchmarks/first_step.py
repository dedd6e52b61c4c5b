"""Judged replies and their cheap score: a second forward pass vs generation's own prompt pass.

Before, the cheap score of every judged prompt was a forward pass of its own after the
generation (``generate`` then ``last_logprobs`` under the same edit). Now ``generate``
hands back the first step's log-probabilities (``first_logprobs``) and no second pass runs.
Same model object, prompts and edit, same process; interleaved repeats, the minimum counts.
Also checks that the replies and the scores are identical.

    .venv/bin/python benchmarks/first_step.py --model qwen-coder-0.5b --prompts 16 --tokens 32
"""

from __future__ import annotations

import time

import numpy as np

from refusal_checks.measure.effects import FirstStep
from refusal_checks.models.interventions import steer
from refusal_checks.prompts.load import bundled
from refusal_checks.models.scoring import refusal_score
from common import arguments, load  # benchmarks/common.py


def main() -> None:
    parser = arguments(__doc__, prompts=16)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    backend = load(args.model)
    prompts = bundled().benign.head(args.prompts)
    layer = int(0.48 * backend.n_layers)
    direction = np.random.default_rng(0).standard_normal(backend.d_model)
    edit = steer(direction, 0.2, layer, 20.0)
    tokens = backend.refusal_token_ids()
    times: dict[str, list[float]] = {"generate + forward": [], "generate, first step": []}
    results = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        replies = backend.generate(prompts, args.tokens, intervention=edit,
                                   batch_size=args.batch_size)
        scores = refusal_score(backend.last_logprobs(prompts, intervention=edit,
                                                     batch_size=args.batch_size), tokens)
        times["generate + forward"].append(time.perf_counter() - started)
        results["generate + forward"] = (replies, scores)
        started = time.perf_counter()
        first = FirstStep()
        replies = backend.generate(prompts, args.tokens, intervention=edit,
                                   batch_size=args.batch_size, first_logprobs=first)
        found = first.of(prompts)
        assert found is not None, "the backend did not report the first step"
        scores = refusal_score(found, tokens)
        times["generate, first step"].append(time.perf_counter() - started)
        results["generate, first step"] = (replies, scores)
    (old_r, old_s), (new_r, new_s) = results.values()
    same = sum(a == b for a, b in zip(old_r, new_r))
    base, ours = min(times["generate + forward"]), min(times["generate, first step"])
    print(f"{args.model}, {args.prompts} prompts x {args.tokens} tokens, steered, batch "
          f"{args.batch_size}")
    print(f"generate + forward: {base:.2f} s; generate, first step: {ours:.2f} s; "
          f"{base / ours:.2f}x faster")
    print(f"replies identical: {same}/{len(old_r)}; score max |difference|: "
          f"{float(np.max(np.abs(old_s - new_s))):.2e}")


if __name__ == "__main__":
    main()
