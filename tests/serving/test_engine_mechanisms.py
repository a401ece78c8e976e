"""Serving mechanisms behind the server and burst cases: latency at the SLO edge, tail of the running batch."""

from __future__ import annotations

from typing import Any

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
    vllm = ic.serving_facts(_gpustack("gpustack-qwen3-8b-910b-vllm-sharegpt"))
    # vLLM-Ascend v0.9.1 forces its AscendScheduler on non-MLA models: no chunked prefill, budget max_model_len
    assert vllm["scheduler"] == "prefill_first_capped" and vllm["max_num_batched_tokens"] == 40960


def test_bad_engine_fact_names_file_field_and_allowed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fleetwise.errors import SpecError

    bad = tmp_path / "facts.yaml"
    bad.write_text("engines:\n  x:\n    scheduler: fastest\n")
    allowed = r"decode_first, prefill_first, prefill_first_capped"
    with pytest.raises(SpecError, match=rf"engines\.x\.scheduler.*{allowed}.*fastest"):
        ic._all_serving_facts(bad)


def test_output_length_spread_weighs_waits_more_in_mean_tpot() -> None:
    assert ic.output_length_kappa(4.001) == pytest.approx(1.0, abs=1e-3)  # every output the minimum length
    assert 3.5 < ic.output_length_kappa(201.6) < 4.0  # exponential above 4 tokens, mean 200 (Monte Carlo: 3.73)
    assert ic.output_length_kappa(50.0) < ic.output_length_kappa(200.0) < ic.output_length_kappa(1000.0)


def _one_chip_deployment(catalog: Catalog, case_id: str) -> tuple[Any, Any]:
    """The serving setup of a gpustack case on one chip, and its single-replica deployment."""
    from fleetwise.perf.efficiency import load_efficiency
    from fleetwise.validate.specs import resolve_specs

    model, accel, system = resolve_specs(_gpustack(case_id), catalog)
    return make_serving_setup(model, accel, system, load_efficiency()), ic._Deployment(ic.ServingShape.of(1), 1, 1, {})


def test_prefill_first_engine_answers_sooner_but_decodes_later_than_decode_first(catalog: Catalog) -> None:
    from fleetwise.perf.batching import decode_rates

    s, d = _one_chip_deployment(catalog, "gpustack-qwen3-8b-910b-mindie-sharegpt")
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


def test_kernel_counts_follow_the_layer_code_and_tp_adds_two_all_reduces_per_layer(catalog: Catalog) -> None:
    from fleetwise.perf.inference import kernels_per_step

    dense, moe = catalog.model("qwen3-8b"), catalog.model("qwen3-30b-a3b")
    assert float(kernels_per_step(dense, np.array([1]))[0]) == 36 * (9 + 3) + 3
    assert float(kernels_per_step(moe, np.array([2]))[0]) == 48 * (9 + 16 + 2) + 3
    # a MoE layer issues about twice the kernels of a dense one, TP two all-reduces more
    per_dense_layer = float(kernels_per_step(dense, np.array([1]))[0]) / 36
    assert float(kernels_per_step(moe, np.array([1]))[0]) / 48 > 1.9 * per_dense_layer


def test_host_issue_time_floors_a_step_and_hides_behind_a_device_bound_one(catalog: Catalog) -> None:
    from dataclasses import replace

    from fleetwise.perf.inference import ServingShape, kernels_per_step, step_time

    s = make_serving_setup(catalog.model("qwen3-30b-a3b"), catalog.accelerator("huawei_ascend_910b"),
                           catalog.system("huawei_atlas_800t_a2"))
    host = replace(s, host_s_per_kernel=87e-6)
    sh = ServingShape.of(2)
    z = np.zeros(1)

    def step(setup, tokens: float):  # type: ignore[no-untyped-def]
        return step_time(setup, sh, np.array([tokens]), np.array([100.0]), np.array([1.0]), z, z)

    floor = float(kernels_per_step(s.model, sh.tp)[0]) * 87e-6
    small, small_host = step(s, 4.0), step(host, 4.0)
    # a few tokens: the device idles while the host issues the kernels
    assert float(small_host.total_s[0]) == pytest.approx(floor + s.constants.step_overhead_s, rel=1e-9)
    assert float(small.total_s[0]) < float(small_host.total_s[0])
    # a long prefill keeps the device busier than the host: the issue time hides behind it
    big, big_host = step(s, 32768.0), step(host, 32768.0)
    assert float(big.total_s[0]) > floor
    assert float(big_host.total_s[0]) == pytest.approx(float(big.total_s[0]))


def test_capped_prefill_first_burst_interleaves_prefill_steps_into_tpot(catalog: Catalog) -> None:
    from fleetwise.perf.batching import decode_rates

    s, d = _one_chip_deployment(catalog, "gpustack-qwen3-8b-910b-vllm-sharegpt")
    i, o, n, cap = 217.0, 201.5, 1000.0, 256.0
    alone = float(decode_rates(s, d.shape, np.array([cap]), i + 0.5 * o, 1.0, with_prefill=False).tpot_s[0])
    capped = ic._burst_prefill_first_capped(s, d, n, cap, i, o, 40960.0, 1.0)
    # most decode steps free a slot and are followed by a prefill-only step: TPOT well above a decode step
    assert capped["tpot_ms"] > 1.3 * alone * 1e3
    # the queued requests wait for a slot: mean TTFT well above the first wave's prefill
    assert capped["ttft_ms"] > 3.0 * float(ic.prefill_rate(s, d.shape, i, np.array([40960.0]))[0].total_s[0]) * 1e3
    # fewer prompts than slots: no drain, no interleaved prefill steps
    few = ic._burst_prefill_first_capped(s, d, 100.0, cap, i, o, 40960.0, 1.0)
    assert few["tpot_ms"] < capped["tpot_ms"] and few["ttft_ms"] < capped["ttft_ms"]
