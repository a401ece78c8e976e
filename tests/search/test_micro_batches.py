"""Micro-batch sizes are every divisor of the global batch (up to the cap), not only powers of two."""

from __future__ import annotations

from fleetwise.api import training_setup
from fleetwise.catalog import Catalog
from fleetwise.plan import TrainingJob
from fleetwise.search.evaluate import search_training
from fleetwise.search.space import SearchSpace, _micro_batches


def test_axis_is_the_divisors_of_the_global_batch_up_to_the_cap() -> None:
    job = TrainingJob(seq_len=2048, global_batch=1536)
    assert _micro_batches(SearchSpace(chips=8), job) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128]
    assert _micro_batches(SearchSpace(chips=8, max_micro_batch=10), TrainingJob(seq_len=2048, global_batch=1923)) \
        == [1, 3]
    assert _micro_batches(SearchSpace(chips=8, pinned={"micro_batch": 5}), job) == [5]


def test_turing_530b_on_641_replicas_finds_micro_batch_3(catalog: Catalog) -> None:
    # global batch 1923 = 3 x 641 on 5,128 A100: dp is 1 or 641, so only micro-batch 1 or 3 divide a
    # replica's batch of 3; micro-batch 3 runs one micro-batch per step instead of three
    s = training_setup("megatron-gpt-530b", "nvidia_a100_80gb_sxm", system="nvidia_dgx_a100", seq_len=2048,
                       global_batch=1923, catalog=catalog)
    best = search_training(s, SearchSpace(chips=5128), top=1).best[0]
    assert best.plan.micro_batch == 3 and best.plan.dp == 641
    only_1 = search_training(s, SearchSpace(chips=5128, pinned={"micro_batch": 1}), top=1).best[0]
    assert only_1.step_time_s > best.step_time_s  # the powers-of-two axis would have missed the faster plan
