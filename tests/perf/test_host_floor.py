"""Host floor: a layer pass takes at least its kernels x the host time per kernel (eager frameworks)."""

from __future__ import annotations

from fleetwise.catalog import Catalog
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import training_step
from fleetwise.plan import TrainingJob, TrainingPlan


def _step(catalog: Catalog, eff: EfficiencyTable, model: str, host_s: float, mbs: int = 1) -> float:
    job = TrainingJob(seq_len=1024, global_batch=8, precision="fp16", host_s_per_kernel=host_s)
    s = make_training_setup(catalog.model(model), catalog.accelerator("nvidia_a100_80gb_sxm"),
                            catalog.system("nvidia_dgx_a100"), job, eff)
    plan = Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, micro_batch=mbs, recompute="full", zero=0)])
    return float(training_step(plan, s).step_time_s[0])


def test_a_slow_host_slows_small_layers(catalog: Catalog, eff: EfficiencyTable) -> None:
    assert _step(catalog, eff, "gpt3-350m", 60e-6) > 1.2 * _step(catalog, eff, "gpt3-350m", 4e-6)


def test_the_host_floor_never_speeds_a_plan_up_and_fades_for_large_layers(catalog: Catalog,
                                                                         eff: EfficiencyTable) -> None:
    small = _step(catalog, eff, "gpt3-350m", 60e-6) / _step(catalog, eff, "gpt3-350m", 0.0)
    large = _step(catalog, eff, "gpt3-175b", 60e-6, 1) / _step(catalog, eff, "gpt3-175b", 0.0, 1)
    assert small >= large >= 1.0
    assert large < 1.02


def test_unfused_attention_issues_its_five_kernels_no_layout_copies_of_q_k_v(catalog: Catalog,
                                                                               eff: EfficiencyTable) -> None:
    # Megatron's CoreAttention: baddbmm, scale-mask-softmax, dropout, bmm, one context permute copy; Q/K/V are
    # strided views (vTrain's profiled layer, src/model/gpt_modeling.py) -> 4 kernels more than one flash kernel
    from fleetwise.perf.training import kernels_per_layer_fwd

    plan = Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1, recompute="full", zero=0)])
    counts = {}
    for kernel in ("flash", "unfused"):
        job = TrainingJob(seq_len=1024, global_batch=8, precision="fp16", attention_kernel=kernel)
        s = make_training_setup(catalog.model("gpt3-350m"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                                catalog.system("nvidia_dgx_a100"), job, eff)
        counts[kernel] = kernels_per_layer_fwd(plan, s)
    assert counts["unfused"][1] - counts["flash"][1] == 4.0
    assert float(counts["unfused"][0][0] - counts["flash"][0][0]) == 4.0
