"""Host floor: a layer pass takes at least its kernels x the host time per kernel (eager frameworks)."""

from __future__ import annotations

import pytest

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


def test_backward_issues_the_conjugate_tp_collectives_not_twice_the_forwards() -> None:
    # Megatron's f/g operators: g (all-reduce after a row-parallel GEMM) is the identity backward, f (identity
    # forward) all-reduces backward: 2 and 2; with SP the 4 forward AG/RS have 4 conjugates plus 2 all-gathers
    # of the column-parallel inputs for the weight gradients
    from fleetwise.perf.training import tp_collectives_per_layer

    plans = [TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1, zero=0, sequence_parallel=False),
             TrainingPlan(tp=2, pp=1, dp=4, micro_batch=1, zero=0, sequence_parallel=False),
             TrainingPlan(tp=2, pp=1, dp=4, micro_batch=1, zero=0, sequence_parallel=True)]
    fwd, bwd = tp_collectives_per_layer(Candidates.from_plans(plans))
    assert list(fwd) == [0.0, 2.0, 4.0]
    assert list(bwd) == [0.0, 2.0, 6.0]


def test_a_lock_step_pipeline_idles_at_the_slowest_stages_pace(catalog: Catalog, eff: EfficiencyTable) -> None:
    # DeepSpeed's PipelineEngine: every bubble slot lasts as long as the last stage's (layers + LM head), so the
    # bubble exceeds Megatron-LM's 1F1B bubble (body stages only) by (pp-1) LM-head passes
    plan = Candidates.from_plans([TrainingPlan(tp=1, pp=4, dp=2, micro_batch=1, recompute="full", zero=0)])
    out = {}
    for lockstep in (False, True):
        job = TrainingJob(seq_len=1024, global_batch=16, precision="fp16", pipeline_lockstep=lockstep)
        s = make_training_setup(catalog.model("gpt3-350m"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                                catalog.system("nvidia_dgx_a100"), job, eff)
        out[lockstep] = training_step(plan, s)
    head = out[True].head_s
    assert head is not None
    per_micro = float(head[0] / out[True].n_micro[0])
    assert float(out[True].bubble_s[0] - out[False].bubble_s[0]) == pytest.approx(3 * per_micro, rel=1e-9)
    assert float(out[True].compute_s[0]) == pytest.approx(float(out[False].compute_s[0]), rel=1e-12)


def test_megatrons_fused_softmax_needs_attention_batches_divisible_by_four(catalog: Catalog,
                                                                           eff: EfficiencyTable) -> None:
    # FusedScaleMaskSoftmax (Megatron-DeepSpeed): the causal kernel runs when micro-batch x heads per TP rank
    # divides by 4 and keys <= 2048; else 5 eager ops on fp32 scores replace it, forward and backward
    from fleetwise.perf.training import kernels_per_layer_fwd, softmax_fallback

    plans = Candidates.from_plans([TrainingPlan(tp=8, pp=1, dp=1, micro_batch=1, recompute="full", zero=0),
                                   TrainingPlan(tp=8, pp=1, dp=1, micro_batch=2, recompute="full", zero=0),
                                   TrainingPlan(tp=4, pp=1, dp=2, micro_batch=1, recompute="full", zero=0)])
    out = {}
    for seq, kernel in ((1024, "unfused"), (4096, "unfused"), (1024, "flash")):
        job = TrainingJob(seq_len=seq, global_batch=8, precision="fp16", attention_kernel=kernel)
        s = make_training_setup(catalog.model("gpt3-350m"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                                catalog.system("nvidia_dgx_a100"), job, eff)
        out[(seq, kernel)] = (list(softmax_fallback(plans, s)), kernels_per_layer_fwd(plans, s)[1])
    # gpt3-350m: 16 heads -> 2, 4 and 4 attention batches per rank
    assert out[(1024, "unfused")][0] == [True, False, False]
    assert list(out[(1024, "unfused")][1]) == [9.0, 5.0, 5.0]
    assert out[(4096, "unfused")][0] == [True, True, True]
    assert out[(1024, "flash")][0] == [False, False, False]
