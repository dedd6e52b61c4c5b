"""Steered generation: refusal_checks (nnsight iter loop) vs plain model.generate + a torch hook.

Same model object, same prompts, same strength, same process; interleaved repeats, the
minimum counts. Also checks the two produce identical text.

    .venv/bin/python benchmarks/steer.py --model qwen-coder-0.5b --prompts 16 --tokens 24
"""

from __future__ import annotations

import time

import numpy as np
import torch

from refusal_checks.models.interventions import Ablate, steer
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py


def hooked_generate(backend, texts, tokens, batch_size, edit):
    """The hand-written baseline: forward pre-hooks on the model, plain generate."""
    model, tok = backend.model, backend.tokenizer
    handles = []
    if hasattr(edit, "vector"):
        vector = torch.tensor(edit.vector, dtype=model.dtype)
        handles.append(model.model.layers[edit.layer].register_forward_pre_hook(
            lambda m, a, k: ((a[0] + vector,) + a[1:], k), with_kwargs=True))
    else:
        r = torch.tensor(edit.direction, dtype=model.dtype)

        def project(x):
            return x - (x @ r)[..., None] * r

        for block in model.model.layers:
            handles.append(block.register_forward_pre_hook(
                lambda m, a, k: ((project(a[0]),) + a[1:], k), with_kwargs=True))
            handles.append(block.self_attn.register_forward_hook(
                lambda m, a, o: (project(o[0]),) + tuple(o[1:])))
            handles.append(block.mlp.register_forward_hook(lambda m, a, o: project(o)))
    out = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = backend._batch(texts[start : start + batch_size])
            batch.pop("position_ids")
            with torch.inference_mode():
                ids = model.generate(**batch, max_new_tokens=tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            out += tok.batch_decode(ids[:, batch["input_ids"].shape[1]:],
                                    skip_special_tokens=True)
    finally:
        for handle in handles:
            handle.remove()
    return out


def main() -> None:
    parser = arguments(__doc__, prompts=16)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()
    backend = load(args.model)
    prompts = bundled().benign.head(args.prompts)
    texts = list(prompts.texts)
    layer = int(0.48 * backend.n_layers)
    direction = np.random.default_rng(0).standard_normal(backend.d_model)
    edits = {"steer": steer(direction, 0.2, layer, 20.0), "ablate": Ablate(direction)}
    for name, edit in edits.items():
        times = {"hook": [], "refusal_checks": []}
        for _ in range(args.repeats):
            started = time.perf_counter()
            ours = backend.generate(prompts, args.tokens, intervention=edit,
                                    batch_size=args.batch_size)
            times["refusal_checks"].append(time.perf_counter() - started)
            started = time.perf_counter()
            theirs = hooked_generate(backend, texts, args.tokens, args.batch_size, edit)
            times["hook"].append(time.perf_counter() - started)
        same = sum(a == b for a, b in zip(ours, theirs))
        best = {k: min(v) for k, v in times.items()}
        print(f"{name:7} hook {best['hook']:7.2f} s   refusal_checks {best['refusal_checks']:7.2f} s"
              f"   ratio {best['refusal_checks'] / best['hook']:.2f}x (goal <= 1.15x)"
              f"   identical replies {same}/{len(texts)}")


if __name__ == "__main__":
    main()
