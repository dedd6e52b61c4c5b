"""Activation extraction: refusal_checks (nnsight, cold and cached) vs a plain transformers loop.

Same model object, same prompts, same process; prints wall times and ratios. Timings on a
shared 2-core machine are noisy, so each variant runs ``--repeats`` times, interleaved, and
the minimum counts.

    .venv/bin/python benchmarks/extract.py --model qwen-coder-0.5b --prompts 64
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from refusal_checks.measure.activations import activation_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py


def plain_loop(backend, texts: list[str], batch_size: int, position: int) -> np.ndarray:
    """What a researcher would write by hand: output_hidden_states, keep one position."""
    model, tokenizer = backend.model, backend.tokenizer
    out = []
    for start in range(0, len(texts), batch_size):
        rendered = [tokenizer.apply_chat_template([{"role": "user", "content": t}],
                                                  add_generation_prompt=True, tokenize=False)
                    for t in texts[start : start + batch_size]]
        batch = tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            hidden = model(**batch, output_hidden_states=True, logits_to_keep=1).hidden_states
        # hidden[L] is the input of block L; the last entry is the final norm's output.
        out.append(torch.stack(hidden[: backend.n_layers], 1)[:, :, position].float().numpy())
    return np.concatenate(out)


def refusal_checks_run(backend, prompts, batch_size: int, position: int,
                       cache: ArrayCache | None) -> np.ndarray:
    layers = list(range(backend.n_layers))
    if cache is not None:
        key = activation_key(backend, prompts, layers, [position])
        hit = cache.load(key, expected_shape=(len(prompts), len(layers), 1, backend.d_model))
        if hit is not None:
            return hit[:, :, 0]
    acts = backend.residual_stream(prompts, layers, [position], batch_size=batch_size)
    if cache is not None:
        cache.store(key, acts, {"benchmark": True})
    return acts[:, :, 0]


def main() -> None:
    parser = arguments(__doc__, prompts=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    backend = load(args.model)
    prompts = bundled().categories["safety_core"].refuse.head(args.prompts)
    texts = list(prompts.texts)
    position = -2
    times: dict[str, list[float]] = {"plain": [], "cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            cache = ArrayCache(Path(tmp))
            started = time.perf_counter()
            baseline = plain_loop(backend, texts, args.batch_size, position)
            times["plain"].append(time.perf_counter() - started)
            started = time.perf_counter()
            cold = refusal_checks_run(backend, prompts, args.batch_size, position, cache)
            times["cold"].append(time.perf_counter() - started)
            started = time.perf_counter()
            warm = refusal_checks_run(backend, prompts, args.batch_size, position, cache)
            times["warm"].append(time.perf_counter() - started)
    # Left padding shifts absolute positions in the plain loop (no position_ids); RoPE makes
    # that harmless up to float error, so compare loosely.
    gap = float(np.abs(baseline - cold).max() / (np.abs(baseline).max() + 1e-12))
    assert np.array_equal(cold, warm), "cache served different numbers"
    best = {k: min(v) for k, v in times.items()}
    print(f"model {args.model}, {len(texts)} prompts, batch {args.batch_size}, "
          f"{backend.n_layers} layers, repeats {args.repeats} (min)")
    print(f"plain transformers loop   {best['plain']:8.2f} s")
    print(f"refusal_checks cold       {best['cold']:8.2f} s   ratio to plain "
          f"{best['cold'] / best['plain']:.2f}x (goal <= 1.15x)")
    print(f"refusal_checks from cache {best['warm']:8.3f} s   speed-up over cold "
          f"{best['cold'] / best['warm']:.0f}x (goal >= 20x)")
    print(f"max relative difference plain vs refusal_checks: {gap:.2e}")


if __name__ == "__main__":
    main()
