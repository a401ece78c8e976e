"""Serving mechanisms behind the domestic cases: speculative decoding, grouped expert GEMMs, FP8 attention,
finite-burst benchmarks, and the bundled domestic inference cases."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fleetwise.catalog import Catalog
from fleetwise.errors import SpecError
from fleetwise.perf.batching import decode_rates
from fleetwise.perf.inference import ServingShape, Speculative, make_serving_setup
from fleetwise.validate.cases import load_cases
from fleetwise.validate.runner import BUNDLED_CASES, validate_files


@pytest.fixture(scope="module")
def h20(catalog: Catalog):  # type: ignore[no-untyped-def]
    return make_serving_setup(catalog.model("deepseek-v3"), catalog.accelerator("nvidia_h20"),
                              catalog.system("nvidia_dgx_h100_h200"), expert_parallel=True)


def test_speculative_decoding_emits_accepted_tokens_at_the_cost_of_verify_and_draft(h20) -> None:  # type: ignore[no-untyped-def]
    sh = ServingShape.of(1, 1, 16, 16, "fp8", "fp8")
    b = np.array([8.0])
    plain = decode_rates(h20, sh, b, 4096.0, 1.0, with_prefill=False)
    spec = decode_rates(replace(h20, speculative=Speculative(1, 1.85)), sh, b, 4096.0, 1.0, with_prefill=False)
    # verifying 2 tokens and drafting 1 costs more per step than one token, but less than two plain steps
    assert plain.step.total_s[0] < spec.step.total_s[0] < 2 * plain.step.total_s[0]
    assert spec.tokens_per_s_per_chip[0] > plain.tokens_per_s_per_chip[0]
    assert spec.tpot_s[0] == pytest.approx(spec.step.total_s[0] / 1.85)


def test_accept_length_outside_one_to_steps_plus_one_is_rejected() -> None:
    with pytest.raises(SpecError, match="accept_length"):
        Speculative(1, 2.5)


def test_fp8_attention_speeds_up_compute_bound_mla_decode(h20) -> None:  # type: ignore[no-untyped-def]
    sh = ServingShape.of(1, 1, 16, 16, "fp8", "fp8")
    b = np.array([48.0])
    bf16 = decode_rates(h20, sh, b, 4096.0, 1.0, with_prefill=False).step.attention_s[0]
    fp8 = decode_rates(replace(h20, attention_precision="fp8"), sh, b, 4096.0, 1.0, with_prefill=False)
    assert fp8.step.attention_s[0] < 0.7 * bf16


def test_every_domestic_inference_case_is_predicted_and_h20_within_15pct() -> None:
    report = validate_files([BUNDLED_CASES / "domestic.yaml"])
    preds = {p.case.id: p for p in report.predictions if p.case.kind == "inference"}
    wanted = {c.id for c in load_cases(BUNDLED_CASES / "domestic.yaml")[0] if c.kind == "inference"}
    assert set(preds) == wanted, [e for e in report.errors if e["id"] in wanted]
    pd = preds["vllm-ascend-deepseek-v3.1-a3-2p1d-3.5k1.5k"]  # P/D pools: TTFT under the decode pool's load
    assert pd.predicted["ttft_ms"] > 10 * pd.predicted["tpot_ms"] and pd.chosen["chips"] == 32
    assert {k for k in preds if k.startswith("ant-h20")} == {
        "ant-h20-deepseek-r1-prefill-4k-tp8", "ant-h20-deepseek-r1-decode-ep16-bs48",
        "ant-h20-deepseek-r1-decode-ep16-bs8", "ant-h20-deepseek-r1-decode-ep32-bs8"}
    for cid, p in preds.items():
        if cid.startswith("ant-h20"):
            assert all(abs(e) < 0.15 for e in p.errors().values()), (cid, p.errors())
    burst = preds["gpustack-qwen3-8b-910b-vllm-sharegpt"]
    assert burst.predicted["ttft_ms"] > 10 * burst.predicted["tpot_ms"]  # queued behind a 256-sequence cap
