"""Check the GPU path against the CPU float32 run: activations, directions, replies, speed.

Loads one model twice, on the CPU in float32 (the reference every verdict in the README
was computed in) and on the device under test (CUDA, bfloat16 by default), runs the same
prompts through both, and compares:

- activations: resid_pre at every layer, last template token, per prompt;
- directions: the difference-in-means refusal direction (harmful minus benign prompts)
  at the paper's layer, and at every layer;
- replies: greedy replies, token for token.

Then it prints prompts/s and tokens/s beside the CPU figures, and exits 0 when every
check is within its tolerance, 1 when one is not, 2 when the device cannot be used.
It needs nothing but the repository and the embedded models (no hub: it sets
HF_HUB_OFFLINE=1), and takes about 2 minutes on one GPU with the default sizes
(the CPU reference dominates).

    .venv/bin/python tools/gpu_check.py                       # embedded Qwen, cuda, bf16
    .venv/bin/python tools/gpu_check.py --dtype float32       # tighter tolerances
    .venv/bin/python tools/gpu_check.py --device auto         # spread over every GPU
    .venv/bin/python tools/gpu_check.py --device cpu --model smollm2-135m   # dry run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a GPU box without a hub must still work

# Tolerances per dtype of the device run, against the CPU float32 reference. float32 on
# another device differs only by accumulation order (~1e-6 relative per matmul, growing
# through the layers); bfloat16 keeps 8 bits of mantissa (relative error ~4e-3 per
# operation), which MODELS.md measured as activation cosine 0.99999 and 10 of 16 greedy
# replies identical on the CPU. Replies flip at near-ties, so only a share must match.
TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"activation_cosine": 0.9999, "activation_rel_error": 1e-2,
                "direction_cosine": 0.9999, "replies_identical": 0.75},
    "bfloat16": {"activation_cosine": 0.99, "activation_rel_error": 0.15,
                 "direction_cosine": 0.99, "replies_identical": 0.4},
    "float16": {"activation_cosine": 0.995, "activation_rel_error": 0.1,
                "direction_cosine": 0.995, "replies_identical": 0.5},
}


@dataclass
class Run:
    """What one device produced, and how long it took."""

    label: str
    acts: np.ndarray  # (prompt, layer, d_model): harmful then benign prompts
    replies: list[str]
    forward_seconds: float
    generate_seconds: float
    new_tokens: int


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    higher_is_better: bool = True

    @property
    def ok(self) -> bool:
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit


def prompts(n: int) -> tuple[Any, Any]:
    """``n`` harmful prompts (the safety categories, pooled) and ``n`` benign ones."""
    from refusal_checks.prompts.sets import PromptSet
    from refusal_checks.prompts.load import bundled

    collection = bundled()
    harmful: list[str] = []
    for name in ("safety_core", "crime_assistance", "hate_speech", "safety_concerns"):
        if name in collection.categories:
            harmful += collection.categories[name].refuse.texts
    harmful = harmful[:n] or list(next(iter(collection.categories.values())).refuse.texts[:n])
    benign = collection.benign.texts[:n]
    return (PromptSet("gpu_check/harmful", "gpu_check", "refuse", tuple(harmful), "bundled"),
            PromptSet("benign", "benign", "benign", tuple(benign), "bundled"))


def run(model: str, device: str, dtype: str, harmful: Any, benign: Any, *, new_tokens: int,
        batch_size: int, cache_dir: Path) -> tuple[Run, Any]:
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    backend = load_backend(resolve(model), LoadOptions(dtype=dtype, device=device,
                                                       cache_dir=cache_dir))
    layers = list(range(backend.n_layers))
    sync = _synchronize(device)
    started = time.perf_counter()
    acts = np.concatenate([backend.residual_stream(p, layers, [-1], batch_size=batch_size)
                           for p in (harmful, benign)])[:, :, 0, :]
    sync()
    forward = time.perf_counter() - started
    started = time.perf_counter()
    replies = backend.generate(harmful, new_tokens, batch_size=batch_size)
    sync()
    generate = time.perf_counter() - started
    label = f"{device} {dtype}"
    return Run(label, acts, replies, forward, generate, new_tokens * len(harmful)), backend


def _synchronize(device: str) -> Any:
    """Waits for the device's queued work (every GPU's for ``auto``) before a clock is read."""
    import torch

    if device == "auto" and torch.cuda.is_available():
        devices: list[Any] = list(range(torch.cuda.device_count()))
    elif device.startswith("cuda"):
        devices = [torch.device(device)]
    else:
        return lambda: None

    def synchronize() -> None:
        for each in devices:
            torch.cuda.synchronize(each)

    return synchronize


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.where(norms == 0, 1.0, norms)


def compare(reference: Run, device: Run, n_harmful: int, layer: int,
            dtype: str) -> list[Check]:
    """The checks of the device run against the reference, with ``dtype``'s tolerances."""
    limits = TOLERANCES[dtype]
    ref, got = reference.acts.astype(np.float64), device.acts.astype(np.float64)
    relative = np.linalg.norm(got - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1),
                                                               1e-12)
    directions_ref = ref[:n_harmful].mean(0) - ref[n_harmful:].mean(0)  # (layer, d_model)
    directions_got = got[:n_harmful].mean(0) - got[n_harmful:].mean(0)
    direction_cos = _cosines(directions_ref, directions_got)
    # At layer 0 the last template token has the same embedding in every prompt, so the
    # difference in means is exactly zero there: no direction to compare.
    scale = np.linalg.norm(ref, axis=-1).mean()
    has_direction = np.linalg.norm(directions_ref, axis=-1) > 1e-6 * scale
    same = np.mean([a == b for a, b in zip(reference.replies, device.replies)])
    return [
        Check("activation cosine, worst prompt x layer", float(_cosines(ref, got).min()),
              limits["activation_cosine"]),
        Check("activation relative error, worst", float(relative.max()),
              limits["activation_rel_error"], higher_is_better=False),
        Check(f"refusal direction cosine at layer {layer}", float(direction_cos[layer]),
              limits["direction_cosine"]),
        Check("refusal direction cosine, worst layer", float(direction_cos[has_direction].min(
            initial=1.0)), limits["direction_cosine"]),
        Check("greedy replies identical (share)", float(same), limits["replies_identical"]),
    ]


def report(reference: Run, device: Run, checks: list[Check], n_prompts: int) -> str:
    lines = [f"{'check':<44} {'value':>10} {'limit':>10}  ok"]
    for check in checks:
        sign = ">=" if check.higher_is_better else "<="
        lines.append(f"{check.name:<44} {check.value:>10.6f} {sign}{check.limit:>8.4g}  "
                     f"{'yes' if check.ok else 'NO'}")
    lines.append("")
    lines.append(f"{'throughput':<44} {reference.label:>14} {device.label:>14}")
    rates = [(n_prompts / r.forward_seconds, r.new_tokens / r.generate_seconds)
             for r in (reference, device)]
    lines.append(f"{'forward, all layers saved (prompts/s)':<44} {rates[0][0]:>14.1f} "
                 f"{rates[1][0]:>14.1f}")
    lines.append(f"{'greedy generation (new tokens/s)':<44} {rates[0][1]:>14.1f} "
                 f"{rates[1][1]:>14.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen-coder-0.5b",
                        help="any --model value; default: the embedded Qwen (offline)")
    parser.add_argument("--device", default="cuda",
                        help="device under test: cuda, cuda:1, auto (several GPUs: one model "
                        "spread over all of them), cpu")
    parser.add_argument("--dtype", default=None, choices=sorted(TOLERANCES),
                        help="dtype of the device run; default bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--prompts", type=int, default=32, help="harmful and benign prompts each")
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where converted models live (default: the refusal_checks cache)")
    args = parser.parse_args(argv)
    from refusal_checks.measure.activations import paper_layer
    from refusal_checks.cache.keys import default_cache_dir
    from refusal_checks.errors import RefusalChecksError

    from refusal_checks.models.nnsight.devices import resolve_dtype

    dtype = resolve_dtype(args.dtype, args.device)
    cache_dir = args.cache_dir or default_cache_dir()
    harmful, benign = prompts(args.prompts)
    n_prompts = len(harmful) + len(benign)
    try:
        device, backend = run(args.model, args.device, dtype, harmful, benign,
                              new_tokens=args.new_tokens, batch_size=args.batch_size,
                              cache_dir=cache_dir)
        placed = backend.info.get("device_map")
        del backend  # free the device before the CPU reference loads
        reference, cpu = run(args.model, "cpu", "float32", harmful, benign,
                             new_tokens=args.new_tokens, batch_size=args.batch_size,
                             cache_dir=cache_dir)
    except RefusalChecksError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2
    checks = compare(reference, device, len(harmful), paper_layer(cpu.n_layers), dtype)
    print(f"gpu_check: {args.model}, {n_prompts} prompts, {args.new_tokens} new tokens, "
          f"batch {args.batch_size}; reference cpu float32, device {args.device} {dtype}")
    if placed:
        print(f"gpu_check: device map: {placed}")
    print(report(reference, device, checks, n_prompts))
    failed = [c.name for c in checks if not c.ok]
    print("gpu_check: " + ("all checks within tolerance" if not failed
                           else f"OUT OF TOLERANCE: {', '.join(failed)}"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
