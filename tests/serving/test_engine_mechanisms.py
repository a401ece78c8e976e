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
