"""Replies at 16, 24 and 32 tokens: each reader generating its own vs one generation per
prompt at the longest budget, shorter readers served its token prefix.

Three readers ask the same unsteered prompts, as a run's behaviour control (16 tokens,
every prompt), baseline (24, every other prompt) and judged probes (32, the first quarter)
do. Before, each generated its own replies; now one generation per prompt at the longest
budget any of them reads (``ReplyPlan``) serves all three through the cache. Same model
object, prompts and process; interleaved repeats, the minimum counts.

Also counted, on the same prompts: how often a served prefix differs from the reply the
reader generated itself (which ran in another batch, so float32 rounding may differ), and,
as a check of the arithmetic, how often the prefix of a longer generation differs from a
shorter one of the very same batch (it must be never).

    .venv/bin/python benchmarks/shared_replies.py --model qwen-coder-0.5b --prompts 32
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from refusal_checks.cache.store import ArrayCache
from refusal_checks.measure.activations import replies
from refusal_checks.measure.shared_replies import ReplyPlan
from refusal_checks.prompts.load import bundled
from refusal_checks.prompts.sets import PromptSet
from common import arguments, load  # benchmarks/common.py

BUDGETS = (16, 24, 32)


def readers(prompts: PromptSet) -> list[tuple[PromptSet, int]]:
    """(prompts, budget) per reader: every prompt at 16, every other at 24, a quarter at 32."""
    texts = prompts.texts

    def part(name: str, chosen: tuple[str, ...]) -> PromptSet:
        return PromptSet(f"bench/{name}", prompts.category, prompts.side, chosen, "bench")

    return [(part("control", texts), 16), (part("baseline", texts[::2]), 24),
            (part("probe", texts[: max(1, len(texts) // 4)]), 32)]


def main() -> None:
    parser = arguments(__doc__, prompts=32)
    args = parser.parse_args()
    backend = load(args.model)
    collection = bundled()
    names = sorted(collection.categories)
    per = max(1, -(-args.prompts // len(names)))  # rounded up, then cut to --prompts
    texts = tuple(t for n in names for t in collection.categories[n].refuse.texts[:per])
    prompts = PromptSet("bench/all", "bench", "refuse", texts[: args.prompts], "bench")
    asked = readers(prompts)
    times: dict[str, list[float]] = {"own generation": [], "shared": []}
    results: dict[str, list[list[str]]] = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        own = [backend.generate(p, b, batch_size=args.batch_size) for p, b in asked]
        times["own generation"].append(time.perf_counter() - started)
        results["own generation"] = own
        with tempfile.TemporaryDirectory() as folder:
            cache = ArrayCache(Path(folder), "replies")
            plan = ReplyPlan()
            for p, b in asked:
                plan.add(p.texts, b)
            started = time.perf_counter()
            shared = [replies(backend, p, max_new_tokens=b, cache=cache,
                              batch_size=args.batch_size, plan=plan) for p, b in asked]
            times["shared"].append(time.perf_counter() - started)
        results["shared"] = shared
    base, ours = min(times["own generation"]), min(times["shared"])
    print(f"{args.model}, {len(prompts)} prompts: readers at "
          + ", ".join(f"{b} tokens x {len(p)}" for p, b in asked)
          + f"; batch {args.batch_size}, {args.repeats} repeats")
    print(f"own generation: {base:.2f} s; shared: {ours:.2f} s; ratio {ours / base:.2f}x")
    for (p, b), mine, theirs in zip(asked, results["own generation"], results["shared"]):
        same = sum(x == y for x, y in zip(mine, theirs))
        print(f"  reader {p.name} ({b} tokens): {same}/{len(p)} replies identical to its "
              "own generation")
    # The arithmetic check: one batch, 32 tokens cut to 16 and 24 vs generated at them.
    rows: list[list[int]] = []
    backend.generate(prompts, max(BUDGETS), batch_size=args.batch_size,
                     reply_tokens=lambda _t, new: rows.extend(new))
    for budget in BUDGETS[:-1]:
        alone = backend.generate(prompts, budget, batch_size=args.batch_size)
        same = sum(x == y for x, y in zip(backend.reply_text(rows, budget), alone))
        print(f"  same batches, {max(BUDGETS)} cut to {budget} vs generated at {budget}: "
              f"{same}/{len(prompts)} identical")


if __name__ == "__main__":
    main()
