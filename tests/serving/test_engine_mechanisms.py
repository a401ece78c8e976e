"""Serving mechanisms behind the server and burst cases: latency at the SLO edge, tail of the running batch."""

from __future__ import annotations

import numpy as np
import pytest

from fleetwise.catalog import Catalog
from fleetwise.perf.inference import make_serving_setup
from fleetwise.validate import inference_cases as ic
from fleetwise.validate.cases import load_cases
from fleetwise.validate.runner import BUNDLED_CASES


@pytest.fixture(scope="module")
def h100_70b(catalog: Catalog):  # type: ignore[no-untyped-def]
    s = make_serving_setup(catalog.model("llama2-70b"), catalog.accelerator("nvidia_h100_sxm"),
                           catalog.system("nvidia_dgx_h100_h200"))
    shape = ic.ServingShape.of(2, 1, 1, 1, "fp8", "fp8")
    return s, ic._Deployment(shape, 1, 2, {})


def test_p99_tpot_exceeds_the_mean_and_the_gap_grows_with_load(h100_70b) -> None:  # type: ignore[no-untyped-def]
    s, d = h100_70b
    budget = np.array([8192.0])
    low = ic._server_at(s, d, 8.0, 290.0, 290.0, 1000.0, budget)
    high = ic._server_at(s, d, 18.0, 290.0, 290.0, 1000.0, budget)
    assert low["tpot_p99_ms"] > low["tpot_ms"] and high["ttft_p99_ms"] > high["ttft_ms"]
    # near saturation the running batch fluctuates more (negative binomial variance ~ 1/(1-rho)^2)
    assert high["tpot_p99_ms"] - high["tpot_ms"] > low["tpot_p99_ms"] - low["tpot_ms"]
    assert high["batch"] > 2 * low["batch"]


def test_server_latency_is_predicted_at_the_slo_edge_the_submitter_tuned_to(catalog: Catalog) -> None:
    from fleetwise.perf.efficiency import load_efficiency

    case = next(c for c in load_cases(BUNDLED_CASES / "inference.yaml")[0]
                if c.id == "mlperf41-llama2-70b-h100x8-server")
    eff = load_efficiency()
    p = ic.predict_inference(case, catalog, eff)
    # without an SLO the same run is priced at the published rate: lower latency (more headroom in our model)
    plain = ic.predict_inference(case.model_copy(update={"inference": case.inference.model_copy(  # type: ignore[union-attr]
        update={"slo": None})}), catalog, eff)
    assert p.predicted["tpot_ms"] > plain.predicted["tpot_ms"]
    assert p.predicted["ttft_ms"] > plain.predicted["ttft_ms"]
    assert p.predicted["output_tokens_per_s"] == pytest.approx(plain.predicted["output_tokens_per_s"])
    assert any("edge" in n for n in p.notes)
    # the p99 TPOT at the edge stays within the 200 ms constraint
    assert p.predicted["tpot_ms"] <= 200.0
    # a run with an SLO from a source whose rules do not make it the highest passing rate: priced as published
    other = ic.predict_inference(case.model_copy(update={"source": "a blog", "url": "https://example.org/b"}),
                                 catalog, eff)
    assert other.predicted["tpot_ms"] == pytest.approx(plain.predicted["tpot_ms"])
    assert other.predicted["request_rate_at_slo"] == pytest.approx(p.predicted["request_rate_at_slo"])


def _gpustack(cid: str):  # type: ignore[no-untyped-def]
    return next(c for c in load_cases(BUNDLED_CASES / "domestic.yaml")[0] if c.id == cid)


def test_engine_facts_apply_to_a_case_that_names_the_engine_only_in_its_notes() -> None:
    case = _gpustack("gpustack-qwen3-8b-910b-mindie-sharegpt")
    unnamed = case.model_copy(update={"id": "hidden-mindie-run", "url": "https://example.org/other"})
    facts = ic.serving_facts(unnamed)
    assert facts["engine"] == "mindie-2.1" and facts["scheduler"] == "prefill_first"
    assert facts["max_num_seqs"] == 200 and facts["max_prefill_tokens"] == 8192
    assert "benchmark_prompts" not in facts  # a source fact stays with its source
    assert ic.serving_facts(_gpustack("gpustack-qwen3-8b-910b-vllm-sharegpt"))["scheduler"] == "decode_first"


def test_bad_engine_fact_names_file_field_and_allowed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fleetwise.errors import SpecError

    bad = tmp_path / "facts.yaml"
    bad.write_text("engines:\n  x:\n    scheduler: fastest\n")
    with pytest.raises(SpecError, match=r"engines\.x\.scheduler.*decode_first, prefill_first.*fastest"):
        ic._all_serving_facts(bad)


def test_output_length_spread_weighs_waits_more_in_mean_tpot() -> None:
    assert ic.output_length_kappa(4.001) == pytest.approx(1.0, abs=1e-3)  # every output the minimum length
    assert 3.5 < ic.output_length_kappa(201.6) < 4.0  # exponential above 4 tokens, mean 200 (Monte Carlo: 3.73)
    assert ic.output_length_kappa(50.0) < ic.output_length_kappa(200.0) < ic.output_length_kappa(1000.0)


def test_prefill_first_engine_answers_sooner_but_decodes_later_than_decode_first(catalog: Catalog) -> None:
    from fleetwise.perf.batching import decode_rates
    from fleetwise.perf.efficiency import load_efficiency
    from fleetwise.validate.specs import resolve_specs

    case = _gpustack("gpustack-qwen3-8b-910b-mindie-sharegpt")
    model, accel, system = resolve_specs(case, catalog)
    s = make_serving_setup(model, accel, system, load_efficiency())
    d = ic._Deployment(ic.ServingShape.of(1), 1, 1, {})
    i, o, n, cap = 217.0, 201.6, 1000.0, 200.0
    full = decode_rates(s, d.shape, np.array([cap]), i, o)
    first = ic._burst_prefill_first(s, d, n, cap, 1100.0, i, o, 8192.0, 1.0)
    decode = ic._burst(s, d, n, cap, i, o, 8192.0, full)
    # every prompt is prefilled before decoding: first tokens come early, the wait moves into TPOT
    assert first["ttft_ms"] < 0.5 * decode["ttft_ms"]
    assert first["tpot_ms"] > 2 * decode["tpot_ms"]
    # spread output lengths weigh that wait more in the mean over requests
    spread = ic._burst_prefill_first(s, d, n, cap, 1100.0, i, o, 8192.0, 3.7)
    assert spread["tpot_ms"] > 2 * first["tpot_ms"]
    assert spread["output_tokens_per_s"] == pytest.approx(first["output_tokens_per_s"])
    # a KV cache that holds fewer prompts than were sent makes the late ones wait for their first token
    small = ic._burst_prefill_first(s, d, n, cap, 400.0, i, o, 8192.0, 1.0)
    assert small["ttft_ms"] > first["ttft_ms"]


def test_a_family_without_its_own_flavour_of_constants_inherits_the_family_not_other_vendors() -> None:
    from fleetwise.perf.inference import load_serving_constants

    dense = load_serving_constants("huawei_ascend_910b", expert_parallel=False)
    ep = load_serving_constants("huawei_ascend_910b", expert_parallel=True)
    assert "inherits huawei_ascend_ep" in dense.family
    assert (dense.compute_scale, dense.step_overhead_s) == (ep.compute_scale, ep.step_overhead_s)
    # a family with a dense group keeps its own
    assert load_serving_constants("nvidia_h100_sxm").family == "nvidia_hopper"
