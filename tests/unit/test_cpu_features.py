"""Whether bfloat16 is native on this CPU, read from /proc/cpuinfo text (stdlib only)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from refusal_checks.models.cpu_features import cpu_flags, dtype_advice, native_bfloat16

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


def test_flags_are_read_from_the_flags_line():
    assert cpu_flags(AVX2_ONLY) == frozenset({"fpu", "sse2", "avx", "avx2", "fma"})
    assert cpu_flags("no such line\n") is None


def test_native_bfloat16_needs_amx_or_avx512_bf16_and_is_unknown_without_flags():
    assert native_bfloat16(AVX2_ONLY) is False
    assert native_bfloat16(AMX) is True
    assert native_bfloat16(ARM) is False  # Arm's bf16 is not one of the flags we trust
    assert native_bfloat16("") is None


def test_the_advice_speaks_only_for_bfloat16_on_a_cpu_that_emulates_it():
    advice = dtype_advice("bfloat16", "cpu", AVX2_ONLY)
    assert advice is not None and "several times slower than float32" in advice
    assert "Drop the option" in advice
    assert dtype_advice("bfloat16", "cpu", AMX) is None
    assert dtype_advice("bfloat16", "cuda", AVX2_ONLY) is None
    assert dtype_advice("float32", "cpu", AVX2_ONLY) is None
    assert dtype_advice(None, "cpu", AVX2_ONLY) is None
    assert dtype_advice("bfloat16", "cpu", "") is None  # unknown: say nothing


@given(st.text(max_size=300))
def test_reading_any_text_never_raises(text):
    assert native_bfloat16(text) in (True, False, None)
