"""float32 against bfloat16 on this machine: the same forward pass, same prompts, same process.

Loads the model twice (float32 and bfloat16), reads the residual stream at every layer for
the same prompts through refusal_checks (no cache), interleaves the two ``--repeats``
times and prints the minimum wall time of each, their ratio, the CPU's bfloat16 flags
(refusal_checks.models.cpu_features) and how far the bfloat16 activations are from the float32
ones (cosine per prompt and layer). The CPU default dtype follows from this ratio and from
the verdict comparison in README ("Number format").

    .venv/bin/python benchmarks/dtype.py --prompts 32
"""

from __future__ import annotations

import time

import numpy as np
import torch

from refusal_checks.models.cpu_features import NATIVE_BF16_FLAGS, cpu_flags, native_bfloat16
from refusal_checks.prompts.load import bundled
from common import arguments, load  # benchmarks/common.py


def main() -> None:
    parser = arguments(__doc__, prompts=32)
    args = parser.parse_args()
    flags = cpu_flags() or frozenset()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()},"
          f" {torch.get_num_threads()} threads; bfloat16 flags: "
          f"{', '.join(f for f in NATIVE_BF16_FLAGS if f in flags) or 'none'} "
          f"(native: {native_bfloat16()})")
    prompts = bundled().categories["safety_core"].refuse.head(args.prompts)
    backends = {dtype: load(args.model, dtype=dtype)
                for dtype in ("float32", "bfloat16")}
    layers = list(range(backends["float32"].n_layers))
    times: dict[str, list[float]] = {dtype: [] for dtype in backends}
    acts: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        for dtype, backend in backends.items():
            started = time.perf_counter()
            acts[dtype] = backend.residual_stream(prompts, layers, [-2],
                                                  batch_size=args.batch_size)[:, :, 0]
            times[dtype].append(time.perf_counter() - started)
    a, b = acts["float32"], acts["bfloat16"].astype(np.float64)
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    best = {dtype: min(t) for dtype, t in times.items()}
    print(f"{len(prompts)} prompts x {len(layers)} layers, batch {args.batch_size}, min of "
          f"{args.repeats}: float32 {best['float32']:.2f} s, bfloat16 {best['bfloat16']:.2f} s;"
          f" bfloat16 / float32 = {best['bfloat16'] / best['float32']:.2f}")
    print(f"activation cosine bfloat16 vs float32: min {cos.min():.5f}, "
          f"median {np.median(cos):.5f}")


if __name__ == "__main__":
    main()
