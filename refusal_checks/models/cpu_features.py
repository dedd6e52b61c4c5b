"""Whether this CPU computes bfloat16 natively, and what to tell a user who asks for it.

bfloat16 halves the weights' memory, but it is faster than float32 on a CPU only where
the hardware multiplies bfloat16 itself: Intel AMX (``amx_bf16``) or AVX-512 BF16
(``avx512_bf16``). Elsewhere torch emulates it, and a forward pass is several times SLOWER
than in float32 (``benchmarks/dtype.py`` measures the ratio on the machine at hand: 6.0x
slower on a 2-core AVX2 machine of our CI's kind). The CPU default therefore stays float32
(README, "Number format"); this module only lets a run say so when someone asks for
bfloat16 on a CPU without it. stdlib only, so the plugin may import it.
"""

from __future__ import annotations

from pathlib import Path

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (or the text given); None if unknown."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None  # not Linux, or no procfs: unknown, not "absent"
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def native_bfloat16(cpuinfo: str | None = None) -> bool | None:
    """True / False when the flags say whether bfloat16 is native; None when unknown."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def dtype_advice(dtype: str | None, device: str, cpuinfo: str | None = None) -> str | None:
    """A line for the terminal when bfloat16 runs on a CPU that only emulates it."""
    if dtype != "bfloat16" or device != "cpu" or native_bfloat16(cpuinfo) is not False:
        return None
    return ("refusal_checks: --refusal-dtype bfloat16 on a CPU without AMX or AVX-512 BF16: "
            "torch emulates bfloat16 here, which is several times slower than float32 "
            "(benchmarks/dtype.py measures it). Drop the option to run in float32.")
