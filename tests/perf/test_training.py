"""Physical invariants of the training cost model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.catalog import Catalog
from fleetwise.errors import InfeasibleError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import TrainingSetup, training_step
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.search.evaluate import evaluate_plan


def setup_for(catalog: Catalog, eff: EfficiencyTable, model: str = "llama3-70b", hw: str = "nvidia_h100_sxm",
              system: str | None = "nvidia_dgx_h100_h200", gbs: int = 256, seq: int = 4096) -> TrainingSetup:
    sys_ = catalog.system(system) if system else None
    return make_training_setup(catalog.model(model), catalog.accelerator(hw), sys_,
                               TrainingJob(seq_len=seq, global_batch=gbs), eff)


def test_breakdown_sums_to_step_time(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff)
    r = evaluate_plan(s, TrainingPlan(tp=8, pp=4, dp=2, micro_batch=1, vpp=5, recompute="selective"))
    assert sum(r.breakdown_s.values()) == pytest.approx(r.step_time_s, rel=1e-12)
    assert all(v >= 0 for v in r.breakdown_s.values())


def test_memory_per_device_falls_as_tp_grows(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff)
    plans = [TrainingPlan(tp=tp, pp=4, dp=16 // tp, micro_batch=1) for tp in (1, 2, 4, 8)]
    cols = training_step(Candidates.from_plans(plans), s)
    assert np.all(np.diff(cols.memory.total) < 0)


def test_each_zero_stage_lowers_memory(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff)
    plans = [TrainingPlan(tp=8, pp=1, dp=8, zero=z) for z in (0, 1, 2, 3)]
    cols = training_step(Candidates.from_plans(plans), s)
    assert np.all(np.diff(cols.memory.weights + cols.memory.gradients + cols.memory.optimizer) < 0)


def test_gradient_buffer_is_held_in_the_jobs_gradient_dtype(catalog: Catalog, eff: EfficiencyTable) -> None:
    # Megatron's fp32 main_grad vs DeepSpeed's fp16 engine (param.grad in fp16): half the bytes, nothing else
    plans = Candidates.from_plans([TrainingPlan(tp=2, pp=4, dp=2, micro_batch=1)])
    base = setup_for(catalog, eff)
    fp16 = make_training_setup(base.model, base.accel, base.system,
                               TrainingJob(seq_len=4096, global_batch=256, grad_dtype="fp16"), eff)
    m32, m16 = training_step(plans, base).memory, training_step(plans, fp16).memory
    assert m16.gradients[0] == pytest.approx(0.5 * m32.gradients[0], rel=1e-12)
    assert (m16.weights[0], m16.optimizer[0], m16.activations[0]) == (m32.weights[0], m32.optimizer[0],
                                                                     m32.activations[0])


def test_full_recompute_trades_memory_for_time(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff)
    plans = [TrainingPlan(tp=8, pp=4, dp=2, recompute=r) for r in ("none", "full")]
    cols = training_step(Candidates.from_plans(plans), s)
    assert cols.memory.activations[1] < 0.25 * cols.memory.activations[0]
    assert cols.step_time_s[1] > cols.step_time_s[0]


def test_more_micro_batches_shrink_the_bubble_share(catalog: Catalog, eff: EfficiencyTable) -> None:
    small = setup_for(catalog, eff, gbs=16)
    large = setup_for(catalog, eff, gbs=256)
    plan = TrainingPlan(tp=8, pp=4, dp=2)
    a, b = evaluate_plan(small, plan, True), evaluate_plan(large, plan, True)
    assert b.breakdown_s["bubble_s"] / b.step_time_s < a.breakdown_s["bubble_s"] / a.step_time_s


def test_plan_too_big_for_memory_is_rejected_with_the_reason(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff, model="llama3.1-405b")
    with pytest.raises(InfeasibleError, match="fits_memory"):
        evaluate_plan(s, TrainingPlan(tp=1, pp=1, dp=16, zero=0))


def test_rule_breaking_plan_names_the_rule(catalog: Catalog, eff: EfficiencyTable) -> None:
    s = setup_for(catalog, eff)
    with pytest.raises(InfeasibleError, match="tp_divides_heads"):
        evaluate_plan(s, TrainingPlan(tp=3, pp=1, dp=1))


@settings(max_examples=25, deadline=None)
@given(factor=st.floats(min_value=1.05, max_value=8.0))
def test_more_scaleout_bandwidth_never_slows_a_plan(factor: float) -> None:
    from fleetwise.catalog import load_catalog
    from fleetwise.perf.efficiency import load_efficiency

    catalog, eff = load_catalog([]), load_efficiency()
    sys_ = catalog.system("nvidia_dgx_h100_h200")
    faster = sys_.model_copy(update={"scaleout_gbit_per_node": sys_.scaleout_gbit_per_node * factor})
    job = TrainingJob(seq_len=4096, global_batch=64)
    plan = Candidates.from_plans([TrainingPlan(tp=8, pp=2, dp=4, zero=1), TrainingPlan(tp=4, pp=1, dp=16, zero=3)])
    m, a = catalog.model("llama3-70b"), catalog.accelerator("nvidia_h100_sxm")
    slow = training_step(plan, make_training_setup(m, a, sys_, job, eff)).step_time_s
    fast = training_step(plan, make_training_setup(m, a, faster, job, eff)).step_time_s
    assert np.all(fast <= slow + 1e-12)


def test_the_last_stages_lm_head_sets_the_pace_but_does_not_fill_the_bubble(catalog: Catalog,
                                                                            eff: EfficiencyTable) -> None:
    # 1F1B: warm-up and cool-down are the other stages' passes of one micro-batch; a bigger vocabulary
    # slows the last stage's steady state (n_micro times), never the pp-1 bubble slots of the body stages
    plan = Candidates.from_plans([TrainingPlan(tp=1, pp=4, dp=2, micro_batch=1, recompute="full", zero=0)])
    steps = []
    for vocab in (32000, 256000):
        m = catalog.model("gpt3-350m").model_copy(update={"vocab": vocab})
        job = TrainingJob(seq_len=1024, global_batch=16, precision="bf16")
        s = make_training_setup(m, catalog.accelerator("nvidia_a100_80gb_sxm"), catalog.system("nvidia_dgx_a100"),
                                job, eff)
        steps.append(training_step(plan, s))
    small, big = steps
    assert big.compute_s[0] > small.compute_s[0]
    assert big.bubble_s[0] == pytest.approx(small.bubble_s[0], rel=1e-9)
    assert big.head_s is not None and small.head_s is not None
    step_delta = big.step_time_s[0] - small.step_time_s[0]
    others = (big.optimizer_s[0] - small.optimizer_s[0]) + (big.dp_comm_s[0] - small.dp_comm_s[0])
    assert step_delta - others == pytest.approx(big.head_s[0] - small.head_s[0], rel=1e-6)


def test_one_stage_holds_every_parameter_once(catalog: Catalog, eff: EfficiencyTable) -> None:
    # pp=1, tp=1, no sharding: 16-bit weights of every parameter, the untied LM head included
    from fleetwise.perf.memory import WEIGHT_BYTES
    from fleetwise.perf.model_math import param_counts

    s = setup_for(catalog, eff, model="llama3-8b")
    m = catalog.model("llama3-8b")
    cols = training_step(Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, zero=0)]), s)
    assert cols.memory.weights[0] == pytest.approx(WEIGHT_BYTES * param_counts(m).total(m), rel=1e-12)


def test_pipeline_stages_split_the_embedding_and_the_head(catalog: Catalog, eff: EfficiencyTable) -> None:
    # with pp > 1 the embedding sits on the first stage and the head on the last: the most loaded device
    # holds one of them (plus its layers), never both
    from fleetwise.perf.memory import WEIGHT_BYTES
    from fleetwise.perf.model_math import param_counts

    s = setup_for(catalog, eff, model="qwen2.5-7b")
    m = catalog.model("qwen2.5-7b")
    pc = param_counts(m)
    cols = training_step(Candidates.from_plans([TrainingPlan(tp=1, pp=2, dp=4, zero=0)]), s)
    stage_layers = (m.layers // 2) * pc.dense_layer
    heavier_end = max(pc.embedding, pc.lm_head + pc.final_norm)
    assert cols.memory.weights[0] == pytest.approx(WEIGHT_BYTES * (stage_layers + heavier_end))


def test_published_mindspeed_qwen2_7b_plan_fits_a_64_gb_910b(catalog: Catalog, eff: EfficiencyTable) -> None:
    # MindSpeed-LLM ran Qwen2-7B at TP1 PP2 DP4, 4K, micro-batch 1, no recompute, distributed optimizer on
    # 64 GB 910B (README table, commit 01546f7): a memory model that rejects it is wrong, not cautious
    job = TrainingJob(seq_len=4096, global_batch=256)
    s = make_training_setup(catalog.model("qwen2.5-7b"), catalog.accelerator("huawei_ascend_910b"),
                            catalog.system("huawei_atlas_900_a2_pod"), job, eff)
    plan = TrainingPlan(tp=1, pp=2, dp=4, micro_batch=1, recompute="none", zero=1, sequence_parallel=False)
    assert bool(training_step(Candidates.from_plans([plan]), s).memory.fits[0])


def test_lora_adapters_are_rank_r_pairs_beside_every_weight_matrix(catalog: Catalog, eff: EfficiencyTable) -> None:
    # Llama-2-70B (hidden 8192, 8 KV heads of 128, FFN 28672), rank 16: A (r x k) and B (n x r) beside QKV
    # (8192 -> 10240), O (8192 -> 8192), gate+up (8192 -> 2 x 28672) and down (28672 -> 8192) in each of 80 layers
    from fleetwise.perf.memory import GRAD_BYTES, OPTIMIZER_BYTES
    from fleetwise.perf.model_math import lora_params_per_layer

    m = catalog.model("llama2-70b")
    per_layer = 16 * ((8192 + 10240) + (8192 + 8192) + (8192 + 2 * 28672) + (28672 + 8192))
    assert lora_params_per_layer(m, 16) == (per_layer, 0.0)
    job = TrainingJob(seq_len=4096, global_batch=8, lora_rank=16)
    s = make_training_setup(m, catalog.accelerator("nvidia_h100_sxm"), catalog.system("nvidia_dgx_h100_h200"), job, eff)
    mem = training_step(Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, zero=0)]), s).memory
    # the frozen base has no gradients or optimiser states: only the adapters' (fp32 gradients, Adam)
    assert mem.gradients[0] == pytest.approx(GRAD_BYTES * 80 * per_layer)
    assert mem.optimizer[0] == pytest.approx(OPTIMIZER_BYTES * 80 * per_layer)
