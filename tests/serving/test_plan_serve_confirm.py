"""plan serve: the plans it puts first are confirmed by replaying traffic through the simulator."""

from __future__ import annotations

import json

import pytest

from fleetwise.cli.main import main


def test_top_plans_for_a_rate_meet_the_slo_in_simulation(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "serve", "--model", "llama3.1-8b", "--hardware", "nvidia_h100_sxm", "--rate", "20",
                 "--input-tokens", "1024", "--output-tokens", "128", "--ttft-ms", "1000", "--tpot-ms", "40",
                 "--top", "10", "--json"])
    data = json.loads(capsys.readouterr().out)["results"]
    assert code == 0
    simulated = [p["simulated"] for p in data["rows"] if "simulated" in p]
    assert simulated, "no plan was replayed"
    # the first plan listed is one the simulator confirms, at the requested percentile
    first = data["rows"][0]["simulated"]
    assert first["meets_slo"] and first["ttft_ms"] <= 1000 and first["tpot_ms"] <= 40
