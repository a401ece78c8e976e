"""Serving cost model invariants, the search, and accuracy against published serving measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.catalog.loader import load_catalog
from fleetwise.perf.batching import decode_rates
from fleetwise.perf.inference import (
    ServingShape,
    kv_bytes_per_token,
    make_serving_setup,
    step_time,
    weight_bytes_per_rank,
)
from fleetwise.search.serving import ServingWorkload, search_serving
from fleetwise.validate.runner import BUNDLED_CASES, validate_files

CAT = load_catalog()
S70 = make_serving_setup(CAT.model("llama3.1-70b"), CAT.accelerator("nvidia_h100_sxm"),
                         CAT.system("nvidia_dgx_h100_h200"))


def test_step_breakdown_sums_to_total() -> None:
    sh = ServingShape.of(4, 1, 1, 1, "fp8", "fp8")
    one = np.ones(1)
    st_ = step_time(S70, sh, 512 * one, 256 * one, 0.5 * one, 64 * one, 1500 * one)
    assert st_.total_s[0] == pytest.approx(sum(float(v[0]) for v in st_.parts().values()))


@settings(max_examples=25, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), w=st.sampled_from(["bf16", "fp8", "int4"]))
def test_sharding_never_raises_weights_per_device(tp: int, w: str) -> None:
    a = weight_bytes_per_rank(S70, ServingShape.of(tp, 1, 1, 1, w))[0]
    b = weight_bytes_per_rank(S70, ServingShape.of(tp * 2, 1, 1, 1, w))[0]
    assert b < a


def test_quantised_kv_holds_fewer_bytes_per_token() -> None:
    tp = np.array([2])
    assert kv_bytes_per_token(S70.model, tp, np.array([1.0]))[0] == kv_bytes_per_token(S70.model, tp,
                                                                                       np.array([2.0]))[0] / 2


def test_mla_kv_is_the_compressed_latent() -> None:
    ds = CAT.model("deepseek-v3")
    assert kv_bytes_per_token(ds, np.array([8]), np.array([2.0]))[0] == (512 + 64) * 2


@settings(max_examples=20, deadline=None)
@given(b1=st.integers(1, 512), b2=st.integers(1, 512))
def test_decode_step_time_never_falls_as_batch_grows(b1: int, b2: int) -> None:
    lo, hi = sorted((b1, b2))
    sh = ServingShape.of(2, 1, 1, 1, "fp8", "fp8")
    r = decode_rates(S70, sh, np.array([float(lo), float(hi)]), 1000.0, 200.0)
    assert r.tpot_s[0] <= r.tpot_s[1] + 1e-12


@settings(max_examples=10, deadline=None)
@given(chips=st.sampled_from([8, 16, 32]))
def test_more_chips_never_lower_planned_goodput(chips: int) -> None:
    w = lambda n: ServingWorkload(1000.0, 200.0, 2.0, 0.05, chips=n)  # noqa: E731
    g1 = search_serving(S70, w(chips), top=1).best[0].goodput_rps
    g2 = search_serving(S70, w(2 * chips), top=1).best[0].goodput_rps
    assert g2 >= g1


def test_search_rejects_with_named_masks_when_nothing_meets_tpot() -> None:
    r = search_serving(S70, ServingWorkload(1000.0, 200.0, 2.0, 1e-5, rate_per_s=1.0))
    assert not r.best and r.rejected_by["meets_tpot"] > 0


def test_inference_validation_meets_the_published_targets() -> None:
    """Accuracy against the 20 published serving measurements (MLPerf, DeepSeek, SGLang, CloudMatrix, TRT-LLM)."""
    report = validate_files([Path(BUNDLED_CASES) / "inference.yaml"], CAT).to_json()
    inf = report["summary"]["inference"]
    assert inf["count"] == 20 and not report["errors"]
    assert inf["median_ape"] <= 0.20
    assert inf["within_25"] >= 0.70
