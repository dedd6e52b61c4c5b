"""Steered scoring: reusing the unedited blocks below the steered one vs the plain full pass.

The steering sweep's workload in miniature: the same prompts scored under several steering
settings (directions x strengths) at the claims' layer (0.48 x depth). The plain path runs
every block for every setting; the reuse path keeps each batch's unedited input to the
steered block from the first setting (:mod:`refusal_checks.models.prefix_store`) and skips the
blocks below it for the rest. Each repeat starts the reuse path with an empty store, so its
time includes filling it. Same model object, same prompts, same process; interleaved
repeats, the minimum counts. Also checks the two give identical log-probabilities.

    .venv/bin/python benchmarks/prefix.py --model qwen-coder-0.5b --prompts 32 --settings 6
"""

from __future__ import annotations

import time

import numpy as np

from refusal_checks.measure.activations import paper_layer
from refusal_checks.models.interventions import steer
from refusal_checks.models.prefix_store import PrefixStore
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py


def main() -> None:
    parser = arguments(__doc__, prompts=32)
    parser.add_argument("--settings", type=int, default=6,
                        help="steering settings: directions x 2 strengths (even)")
    args = parser.parse_args()
    backend = load(args.model)
    prompts = bundled().benign.head(args.prompts)
    layer = paper_layer(backend.n_layers)
    norm = float(np.linalg.norm(backend.residual_stream(prompts, [layer], [-1])[:, 0, 0],
                                axis=-1).mean())
    rng = np.random.default_rng(0)
    edits = [steer(direction, strength, layer, norm)
             for direction in rng.standard_normal((args.settings // 2, backend.d_model))
             for strength in (0.5, 1.0)]

    def run(store: PrefixStore) -> list[np.ndarray]:
        backend.prefix = store
        return [backend.last_logprobs(prompts, intervention=e, batch_size=args.batch_size)
                for e in edits]

    times: dict[str, list[float]] = {"plain": [], "reuse": []}
    results: dict[str, list[np.ndarray]] = {}
    for _ in range(args.repeats):
        for name, store in (("plain", lambda: PrefixStore(0)), ("reuse", PrefixStore)):
            started = time.perf_counter()
            results[name] = run(store())
            times[name].append(time.perf_counter() - started)
    reused = backend.prefix
    same = sum(np.array_equal(a, b) for a, b in zip(results["plain"], results["reuse"]))
    best = {k: min(v) for k, v in times.items()}
    print(f"{args.prompts} prompts x {len(edits)} settings at layer {layer} of "
          f"{backend.n_layers}, batch {args.batch_size}: plain {best['plain']:.2f} s   "
          f"reuse {best['reuse']:.2f} s   ratio {best['reuse'] / best['plain']:.2f}x   "
          f"identical log-probs {same}/{len(edits)} settings   prefixes reused "
          f"{reused.hits}, kept {reused.nbytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
