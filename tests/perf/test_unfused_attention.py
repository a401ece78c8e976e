"""Unfused attention (score matrix materialised): what its backward pass streams through HBM."""

from __future__ import annotations

import numpy as np

from fleetwise.catalog import Catalog
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import _unfused_attention_s
from fleetwise.plan import TrainingJob, TrainingPlan


def test_backward_streams_the_scores_about_as_often_as_forward_not_twice(catalog: Catalog,
                                                                          eff: EfficiencyTable) -> None:
    # backward reads the saved probabilities and the dropout mask once and writes two gradients: its HBM
    # traffic is a little above the forward's, while its batched GEMMs do twice the forward's work
    job = TrainingJob(seq_len=8192, global_batch=8, precision="fp16", attention_kernel="unfused")
    s = make_training_setup(catalog.model("gpt3-350m"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                            catalog.system("nvidia_dgx_a100"), job, eff)
    c = Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1, recompute="full", zero=0)])
    tokens = np.array([8192.0])
    fwd, bwd = _unfused_attention_s(c, s, tokens, 8192.0, np.array([1.0]))
    bytes_per_s = s.accel.hbm_bw_bytes_per_s * s.eff.hbm
    scores = 8192.0 * 8192.0 * s.model.heads
    # split each pass into GEMM and stream parts: backward GEMMs are twice the forward's
    gemm_fwd = fwd[0] - 11.0 * scores / bytes_per_s
    stream_bwd = bwd[0] - 2.0 * gemm_fwd
    stream_fwd = fwd[0] - gemm_fwd
    assert stream_fwd > 0 and stream_bwd > 0
    assert 1.0 < stream_bwd / stream_fwd < 1.5
    assert bwd[0] < 2.0 * fwd[0]
