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


def test_flagperf_llama2_plan_is_the_launch_scripts_not_the_searchs(catalog: Catalog, eff: EfficiencyTable) -> None:
    """FlagPerf's launch script passes no --sequence-parallel and (its eval drops every argument after a literal
    '#--recompute-activations') no activation checkpointing; its ds_config sets ZeRO 1: nothing is left to
    the search, which would pick sequence parallelism for TP4 (the fastest choice, not the one that ran)."""
    from fleetwise.perf.calibration import load_calibration

    for case_id in ("flagperf-llama2-7b-metaxc500-8-tp1dp8", "flagperf-llama2-7b-metaxc500-8-tp4dp2"):
        p = predict_training(_domestic(case_id), catalog, eff, load_calibration())
        assert (p.chosen["sequence_parallel"], p.chosen["zero"], p.chosen["recompute"]) == (False, 1, "none")
        assert not any("chosen by search" in n for n in p.notes)


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


def _tp_comm(catalog: Catalog, eff: EfficiencyTable, model: str, scope: str, seq: int = 8192) -> tuple[float, float]:
    """(exposed TP seconds, compute seconds) of one TP8 SP step with TP overlap on, on 8 Ascend 910B."""
    from fleetwise.perf.candidates import Candidates
    from fleetwise.perf.setup import make_training_setup
    from fleetwise.perf.training import training_step
    from fleetwise.plan import TrainingJob, TrainingPlan

    job = TrainingJob(seq_len=seq, global_batch=8, tp_overlap_scope=scope)  # type: ignore[arg-type]
    s = make_training_setup(catalog.model(model), catalog.accelerator("huawei_ascend_910b"),
                            catalog.system("huawei_atlas_900_a2_pod"), job, eff)
    plan = TrainingPlan(tp=8, pp=1, dp=1, sequence_parallel=True, tp_comm_overlap=True, recompute="none", zero=0)
    cols = training_step(Candidates.from_plans([plan]), s)
    return float(cols.tp_comm_s[0]), float(cols.compute_s[0])


def test_mc2_hides_each_collective_only_behind_its_own_gemm(catalog: Catalog, eff: EfficiencyTable) -> None:
    layer_8b, _ = _tp_comm(catalog, eff, "llama3.1-8b", "layer")
    gemm_8b, compute_8b = _tp_comm(catalog, eff, "llama3.1-8b", "per_gemm")
    gemm_70b, compute_70b = _tp_comm(catalog, eff, "llama3.1-70b", "per_gemm")
    # small QKV / output projections cannot hide their all-gather / reduce-scatter
    assert gemm_8b > 2.0 * layer_8b
    # a wider model's GEMMs grow as hidden^2, its collectives as hidden: a smaller exposed share
    assert gemm_70b / compute_70b < 0.6 * (gemm_8b / compute_8b)


def test_moe_dispatcher_collectives_stay_exposed_under_mc2(catalog: Catalog, eff: EfficiencyTable) -> None:
    moe, _ = _tp_comm(catalog, eff, "mixtral-8x7b", "per_gemm")
    dense, _ = _tp_comm(catalog, eff, "llama3.1-8b", "per_gemm")  # same hidden, heads and layers
    assert moe > 1.5 * dense


def test_allgather_dispatcher_permutes_the_whole_tp_group(catalog: Catalog, eff: EfficiencyTable) -> None:
    from fleetwise.perf.candidates import Candidates
    from fleetwise.perf.setup import make_training_setup
    from fleetwise.perf.training import training_step
    from fleetwise.plan import TrainingJob, TrainingPlan

    def membound(dispatcher: str, tp: int) -> float:
        job = TrainingJob(seq_len=4096, global_batch=8, moe_token_dispatcher=dispatcher)  # type: ignore[arg-type]
        s = make_training_setup(catalog.model("mixtral-8x7b"), catalog.accelerator("huawei_ascend_910b"),
                                catalog.system("huawei_atlas_900_a2_pod"), job, eff)
        plan = TrainingPlan(tp=tp, pp=1, dp=8 // tp, sequence_parallel=tp > 1, recompute="none", zero=1)
        cols = training_step(Candidates.from_plans([plan]), s)
        assert cols.membound_s is not None
        return float(cols.membound_s[0])

    # at TP1 the two dispatchers copy the same tokens; at TP8 the all-gather one copies 8x the permutation bytes
    assert membound("allgather", 1) == membound("alltoall", 1)
    assert membound("allgather", 8) > 1.5 * membound("alltoall", 8)


def test_c500_tp_traffic_rides_metaxlink_full_mesh(catalog: Catalog, eff: EfficiencyTable) -> None:
    """The C500 server is a MetaXLink full mesh: 7 Gen5-x16-class ports (128 GB/s both ways each) per chip,
    one per peer, so a TP4 group sees 3 of the 7 links and TP8 all of them; FlagPerf's C500 cases use it."""
    import numpy as np

    from fleetwise.perf.setup import make_training_setup
    from fleetwise.plan import TrainingJob

    sys_ = catalog.system("metax_c500_8x")
    assert sys_.scaleup.topology == "full_mesh" and sys_.scaleup.per_pair_gbps_bidir == 128
    assert sys_.scaleup.gbps_bidir_per_chip == 7 * 128 == catalog.accelerator("metax_c500").scaleup_gbps_bidir
    s = make_training_setup(catalog.model("llama2-7b"), catalog.accelerator("metax_c500"), sys_,
                            TrainingJob(seq_len=4096, global_batch=8), eff)
    one = np.ones(3, dtype=np.int64)
    t = s.network.all_reduce_s(np.full(3, 32 * 2**20, dtype=np.float64), np.array([2, 4, 8]), one)
    assert t[0] > t[1] > t[2]  # more peers, more links
    for case_id in ("flagperf-llama2-7b-metaxc500-8-tp1dp8", "flagperf-llama2-7b-metaxc500-8-tp4dp2",
                    "flagperf-llama3-8b-metaxc500-8"):
        assert _domestic(case_id).system == "metax_c500_8x"
