"""A run asked for bfloat16 on a CPU that only emulates it says so at its start."""

from __future__ import annotations

import pytest

AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2\n"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n"


@pytest.mark.parametrize(("cpuinfo", "dtype", "said"), [
    (AVX2_ONLY, "bfloat16", True),
    (AMX, "bfloat16", False),
    (AVX2_ONLY, "float32", False),
])
def test_the_run_warns_only_for_bfloat16_on_an_emulating_cpu(pytester, monkeypatch, cpuinfo,
                                                               dtype, said):
    info = pytester.path / "cpuinfo"
    info.write_text(cpuinfo)
    monkeypatch.setattr("refusal_checks.models.cpu_features.CPUINFO", info)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_inprocess("--refusal-dtype", dtype, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    warned = "torch emulates bfloat16 here" in result.stdout.str()
    assert warned is said
