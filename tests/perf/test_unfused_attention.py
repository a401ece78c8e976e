"""Unfused attention (score matrix materialised): which batched GEMMs pay the small-K penalty, and what the
backward pass streams through HBM."""

from __future__ import annotations

import numpy as np

from fleetwise.catalog import Catalog
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import UNFUSED_SCORE_BYTES_FWD, TrainingSetup, _unfused_attention_s
from fleetwise.plan import TrainingJob, TrainingPlan

SEQ = 2048.0


def _parts(catalog: Catalog, eff: EfficiencyTable) -> tuple[TrainingSetup, float, float, float, float]:
    """(setup, forward and backward seconds, one batched GEMM's seconds at K = seq and at K = head dim)."""
    job = TrainingJob(seq_len=int(SEQ), global_batch=8, precision="fp16", attention_kernel="unfused")
    s = make_training_setup(catalog.model("gpt3-350m"), catalog.accelerator("nvidia_a100_80gb_sxm"),
                            catalog.system("nvidia_dgx_a100"), job, eff)
    assert s.model.hidden // s.model.heads == 64
    c = Candidates.from_plans([TrainingPlan(tp=1, pp=1, dp=8, micro_batch=1, recompute="full", zero=0)])
    fwd, bwd = _unfused_attention_s(c, s, np.array([SEQ]), SEQ, np.array([1.0]))
    one = np.array([2.0 * SEQ * SEQ * s.model.hidden])  # FLOPs of one of the batched GEMMs
    peak = s.accel.peak_flops("bf16")
    fast = float(s.eff.gemm_time_s(one, peak, "bf16", np.array([SEQ]))[0])
    slow = float(s.eff.gemm_time_s(one, peak, "bf16", np.array([64.0]))[0])
    return s, float(fwd[0]), float(bwd[0]), fast, slow


def test_only_the_head_dim_reductions_pay_the_small_k_penalty(catalog: Catalog, eff: EfficiencyTable) -> None:
    # QK^T reduces over the 64-wide head dim, AV over the 2048 keys; backward dO V^T over the head dim and
    # dV, dQ, dK over the sequence: one slow GEMM forward, one of four backward
    s, fwd, bwd, fast, slow = _parts(catalog, eff)
    assert slow > 1.5 * fast
    stream = SEQ * SEQ * s.model.heads / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm)
    assert abs(fwd - UNFUSED_SCORE_BYTES_FWD * stream - (fast + slow)) < 1e-9 * fwd
    assert 2 * fast < fwd - UNFUSED_SCORE_BYTES_FWD * stream < 2 * slow


def test_backward_streams_the_scores_about_as_often_as_forward_not_twice(catalog: Catalog,
                                                                          eff: EfficiencyTable) -> None:
    # backward reads the saved probabilities and the dropout mask once and writes two gradients: its HBM
    # traffic is a little above the forward's, while its batched GEMMs do twice the forward's work
    _, fwd, bwd, fast, slow = _parts(catalog, eff)
    stream_fwd, stream_bwd = fwd - (fast + slow), bwd - (3 * fast + slow)
    assert stream_fwd > 0 and stream_bwd > 0
    assert 1.0 < stream_bwd / stream_fwd < 1.5


def test_the_score_write_of_a_head_dim_gemm_is_priced_once(catalog: Catalog, eff: EfficiencyTable) -> None:
    # QK^T's output write is what makes a K = 64 GEMM slow (the small-K penalty); the softmax/dropout stream
    # must not charge it again: the forward stream is under the 11 B/element that includes that write
    s, fwd, _, fast, slow = _parts(catalog, eff)
    elements = SEQ * SEQ * s.model.heads
    streamed = (fwd - fast - slow) * s.accel.hbm_bw_bytes_per_s * s.eff.hbm / elements
    assert 8.0 < streamed < 11.0
