"""Domestic training mechanisms: a source's own MFU formula, MetaX C500 micro-benchmark efficiencies."""

from __future__ import annotations

import pytest

from fleetwise.catalog import Catalog
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.validate.cases import load_cases
from fleetwise.validate.software import NO_FACTS, SoftwareFacts, software_facts
from fleetwise.validate.specs import bundled_case_files
from fleetwise.validate.training_cases import predict_training

FLAGPERF_LLAMA2 = ("https://github.com/FlagOpen/FlagPerf/blob/d1a078e0cf541ad691b2cbf7ba57f3576c4805a5/"
                   "training/metax/llama2_7b-megatron-deepspeed/README.md")


def _domestic(case_id: str):  # type: ignore[no-untyped-def]
    path = next(p for p in bundled_case_files() if p.name == "domestic.yaml")
    cases, _ = load_cases(path)
    return next(c for c in cases if c.id == case_id)


def test_source_mfu_formula_is_tokens_times_flops_over_its_peak() -> None:
    facts = SoftwareFacts(why="t", mfu_flops_per_token=4.2e10, mfu_peak_tflops=240)
    # FlagPerf's later README of the case: 2962 token/p/s next to 51.8 % MFU
    assert facts.source_mfu(2962.0) == pytest.approx(0.518, abs=0.001)
    assert NO_FACTS.source_mfu(2962.0) is None


def test_flagperf_case_is_scored_by_flagperf_formula(catalog: Catalog, eff: EfficiencyTable) -> None:
    from fleetwise.perf.calibration import load_calibration

    case = _domestic("flagperf-llama2-7b-metaxc500-8-tp1dp8")
    p = predict_training(case, catalog, eff, load_calibration())
    facts = software_facts()[FLAGPERF_LLAMA2]
    # the MFU is the throughput through the source's formula, not our model FLOPs over the catalog peak
    assert p.predicted["mfu"] == pytest.approx(facts.source_mfu(p.predicted["tokens_per_s_per_chip"]))
    assert any("own formula" in n for n in p.notes)


def test_c500_has_its_own_gemm_and_hbm_efficiency(eff: EfficiencyTable) -> None:
    c500 = eff.chip("metax_c500")
    assert not c500.is_default and c500.borrowed_from is None
    # FlagPerf: 94.2 % of its 240 TF rating = 0.807 of the catalog 280 TF; stream 74.7 % of 1.8 TB/s
    assert c500.gemm_params("bf16").e_max == pytest.approx(0.942 * 240 / 280, abs=0.002)
    assert c500.hbm == pytest.approx(0.747, abs=0.002)
    # the size sweep's fixed cost: a 1024^3 GEMM runs at well under half the 8192^3 rate's share
    import numpy as np

    peak = 280e12
    small = float(c500.gemm_time_s(np.array([2.0 * 1024**3]), peak, "bf16")[0])
    big = float(c500.gemm_time_s(np.array([2.0 * 8192**3]), peak, "bf16")[0])
    assert (2.0 * 1024**3 / small) < 0.5 * (2.0 * 8192**3 / big)
