"""Per-source software facts (validate/data/software.yaml) and the unfused-attention model they switch on."""

from __future__ import annotations

import numpy as np

from fleetwise.catalog import Catalog
from fleetwise.perf.calibration import load_calibration
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import training_step
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.validate.cases import load_cases
from fleetwise.validate.predict import predict_case
from fleetwise.validate.software import software_facts
from fleetwise.validate.specs import bundled_case_files


def test_every_fact_names_its_source_and_reason() -> None:
    facts = software_facts()
    assert facts and all(f.why and f.attention_kernel in ("flash", "unfused") for f in facts.values())


def test_unfused_attention_costs_more_and_most_for_long_sequences(catalog: Catalog, eff: EfficiencyTable) -> None:
    plans = Candidates.from_plans([TrainingPlan(tp=8, pp=1, dp=1, recompute="none")])

    def step(seq: int, kernel: str) -> float:
        job = TrainingJob(seq_len=seq, global_batch=8, attention_kernel=kernel)  # type: ignore[arg-type]
        s = make_training_setup(catalog.model("gpt3-6.7b"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                                catalog.system("nvidia_dgx_a100"), job, eff)
        return float(training_step(plans, s).step_time_s[0])

    short, long_ = 1024, 2048
    assert step(short, "unfused") > step(short, "flash")
    assert step(long_, "unfused") / step(long_, "flash") > step(short, "unfused") / step(short, "flash")


def test_selective_recompute_drops_the_score_matrix_from_memory(catalog: Catalog, eff: EfficiencyTable) -> None:
    job = TrainingJob(seq_len=2048, global_batch=8, attention_kernel="unfused")
    s = make_training_setup(catalog.model("gpt3-6.7b"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                            catalog.system("nvidia_dgx_a100"), job, eff)
    cols = training_step(Candidates.from_plans([TrainingPlan(tp=8, recompute=r) for r in ("none", "selective")]), s)
    assert cols.memory.activations[1] < 0.6 * cols.memory.activations[0]
    assert np.all(cols.memory.activations > 0)


def test_a_fact_fills_an_unpublished_plan_field_and_never_overrides_a_published_one(
        catalog: Catalog, eff: EfficiencyTable) -> None:
    # GPT-3 on V100 (2020, via Patterson et al. 2021) predates sequence parallelism and TP overlap
    cases, _ = load_cases(next(p for p in bundled_case_files() if p.name == "energy.yaml"))
    gpt3 = next(c for c in cases if c.id == "patterson21-gpt3-175b-v100-10000")
    assert gpt3.training is not None and gpt3.training.sequence_parallel is None
    pred = predict_case(gpt3, catalog, eff, load_calibration())
    assert pred.chosen["sequence_parallel"] is False and pred.chosen["tp_comm_overlap"] is False
    searched = next(n for n in pred.notes if n.startswith("chosen by search"))
    assert "sequence_parallel" not in searched and "tp, " in searched
    assert any("sequence_parallel=False" in n for n in pred.notes)
    published = gpt3.model_copy(update={"training": gpt3.training.model_copy(
        update={"tp": 8, "sequence_parallel": True})})
    assert predict_case(published, catalog, eff, load_calibration()).chosen["sequence_parallel"] is True


def test_measured_deepspeed_16bit_gradient_runs_fit_in_memory(catalog: Catalog, eff: EfficiencyTable) -> None:
    # runs that were measured cannot exceed the device: Megatron-DeepSpeed keeps 16-bit gradients
    # (vTrain tp1 dp64 mb8 on 80 GB A100s; FlagPerf's Llama-2-7B tp1 dp8 on 64 GB C500s)
    wanted = {"vtrain-sweeps.yaml": "vtrain-multi-0000", "domestic.yaml": "flagperf-llama2-7b-metaxc500-8-tp1dp8"}
    for path in bundled_case_files():
        if path.name in wanted:
            case = next(c for c in load_cases(path)[0] if c.id == wanted[path.name])
            pred = predict_case(case, catalog, eff, load_calibration())
            assert not any("exceeds memory" in n for n in pred.notes), (case.id, pred.notes)
