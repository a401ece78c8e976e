"""Per-source software facts (validate/data/software.yaml) and the unfused-attention model they switch on."""

from __future__ import annotations

import numpy as np

from fleetwise.catalog import Catalog
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import training_step
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.validate.software import software_facts


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
