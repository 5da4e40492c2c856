"""precision: auto picks bf16 only where it was measured to pay off (AMX), fp32 elsewhere."""

import pytest
import torch

from ssrobust.runs.precision import cpu_flags, cpu_has_fast_bf16, cpu_summary, resolve_precision

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni
bugs\t\t: sysret_ss_attrs
"""
SAPPHIRE_RAPIDS = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8
"""
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"


def test_flags_are_read_from_flags_lines_only():
    text = "model name\t: amx_bf16 marketing name\n" + AVX2_ONLY
    assert "amx_bf16" not in cpu_flags(text)
    assert {"avx", "avx2", "fma"} <= cpu_flags(text)


@pytest.mark.parametrize("cpuinfo, fast", [(SAPPHIRE_RAPIDS, True), (ZEN4, False), (AVX2_ONLY, False), ("", False)])
def test_only_amx_counts_as_fast_bf16(cpuinfo, fast):
    assert cpu_has_fast_bf16(cpuinfo) is fast


def test_auto_on_cpu_follows_the_flags(monkeypatch):
    import ssrobust.runs.precision as precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # an explicit choice is kept


def test_bad_precision_names_the_value():
    with pytest.raises(ValueError, match="'half'"):
        resolve_precision("half", torch.device("cpu"))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))


def test_cpu_summary_names_the_machine_behind_a_timing():
    zen4 = cpu_summary(ZEN4.replace("vendor_id", "cpu family\t: 25\nmodel\t\t: 17\nvendor_id"))
    assert zen4 == {"model_name": "AMD EPYC", "family": "25", "model": "17", "simd": "avx512",
                    "avx512_bf16": True, "amx": False}
    assert cpu_summary(SAPPHIRE_RAPIDS)["amx"] is True
    assert cpu_summary(AVX2_ONLY)["simd"] == "avx2"
    assert cpu_summary("")["simd"] == "" and cpu_summary("")["amx"] is False


def test_this_machines_summary_has_every_field():
    summary = cpu_summary()
    assert set(summary) == {"model_name", "family", "model", "simd", "avx512_bf16", "amx"}
    assert summary["simd"] in ("avx512", "avx2", "avx", "other", "")
