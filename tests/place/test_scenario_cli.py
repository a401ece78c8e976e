"""Scenario validation and the ``fleetwise place`` commands on a tiny scenario."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fleetwise.cli.main import main
from fleetwise.errors import SpecError
from fleetwise.place.plot import draw_map
from fleetwise.place.problem import random_problem
from fleetwise.place.solve import solve
from fleetwise.place.spec import bundled_scenarios, load_scenario

TINY = {
    "name": "tiny", "model": "qwen2.5-7b", "input_tokens": 512, "output_tokens": 128,
    "sites": [
        {"id": "east", "region": "alibaba:cn-shanghai", "chips": {"nvidia_l4": 16}, "usd_per_kwh": 0.09},
        {"id": "west", "region": "cn-hub:guizhou-guian", "chips": {"nvidia_l4": 8}, "power_kw": 5},
    ],
    "demand": [
        {"id": "shanghai", "region": "alibaba:cn-shanghai", "rate_rps": 6, "ttft_ms": 1500, "tpot_ms": 100},
        {"id": "chengdu", "region": "alibaba:cn-chengdu", "rate_rps": 3, "ttft_ms": 1500, "tpot_ms": 100},
    ],
}


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def test_bundled_china_scenario_validates() -> None:
    assert "china" in bundled_scenarios()
    sc = load_scenario("china")
    assert {d.id for d in sc.demand} == {"beijing", "shanghai", "guangzhou", "chengdu"}
    assert sum(s.edge for s in sc.sites) == 2 and sc.cascade is not None
    assert load_scenario("europe").sites[0].region == "azure:swedencentral"


@pytest.mark.parametrize(("change", "match"), [
    ({"sites": [{**TINY["sites"][0], "cpus": 3}]}, r"s\.yaml: sites\.0\.cpus: Extra inputs"),  # type: ignore[index]
    ({"utilisation": 1.5}, r"utilisation: .*less than 1 \(got 1\.5\)"),
    ({"demand": [{**TINY["demand"][0], "rate_rps": -1}]}, r"demand\.0\.rate_rps: .*greater than 0"),  # type: ignore[index]
    ({"objective": "speed"}, r"objective: .*'cost', 'energy', 'carbon' or 'weighted' \(got 'speed'\)"),
])
def test_bad_scenarios_name_file_field_allowed_and_given(tmp_path: Path, change: dict[str, object],
                                                         match: str) -> None:
    with pytest.raises(SpecError, match=match):
        load_scenario(write(tmp_path, {**TINY, **change}))


def test_unknown_region_and_chip_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {**TINY, "sites": [{**TINY["sites"][0], "region": "alibaba:cn-shanghia"}]}  # type: ignore[index]
    assert main(["place", "serve", str(write(tmp_path, bad)), "--pareto", "0", "--no-heuristics"]) == 2
    assert "sites.east.region: unknown region key 'alibaba:cn-shanghia'" in capsys.readouterr().err


def test_place_serve_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["place", "serve", str(write(tmp_path, TINY)), "--json", "--pareto", "0"]) == 0
    study = json.loads(capsys.readouterr().out)
    assert study["kind"] == "place_serve" and study["inputs"]["scenario_name"]
    d = study["results"]
    t = d["placement"]["totals"]
    assert t["served_share"] == pytest.approx(1.0) and t["slo_met_share"] == pytest.approx(1.0)
    assert sum(sum(r.values()) for r in d["placement"]["routing_rps"].values()) == pytest.approx(9.0)
    split = d["prefill_decode_split"]
    assert split == []  # both sites hold the same chip type: no cross-site P/D pair to report
    milp = d["comparison"]["milp"]["objective"]
    assert all(v["objective"] >= milp - 1e-6 * milp for v in d["comparison"].values())


def test_map_picture_svg_and_bad_suffix(tmp_path: Path) -> None:
    pl = solve(random_problem(np.random.default_rng(3), sites=4, users=3, plans=4, chip_types=2), "cost")
    svg = draw_map(pl, tmp_path / "map.svg")
    assert svg.read_text().startswith("<?xml") and "s0" in svg.read_text()
    with pytest.raises(SpecError, match=r"\.png or \.svg"):
        draw_map(pl, tmp_path / "map.jpg")


def test_place_rtt_prints_both_fits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["place", "rtt", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["fitted_on"], r["checked_on"]) for r in rows] == [("skyplane", "azure"), ("azure", "skyplane")]


def test_cascade_share_from_a_prompt_length_rule(tmp_path: Path) -> None:
    from fleetwise.workload.traces import load_trace

    rule = {"model": "qwen2.5-7b", "rule": {"max_input_tokens": 1000, "trace": "azure_conv"}}
    sc = load_scenario(write(tmp_path, {**TINY, "cascade": rule}))
    assert sc.cascade is not None
    tr = load_trace("azure_conv")
    assert sc.cascade.resolved_share() == pytest.approx(float((tr.input_tokens <= 1000).mean()))
    with pytest.raises(SpecError, match="exactly one of share"):
        load_scenario(write(tmp_path, {**TINY, "cascade": {**rule, "share": 0.3}}))


def test_cli_objectives_are_the_placement_objectives() -> None:
    from fleetwise.cli.place import PLACE_OBJECTIVES
    from fleetwise.place.spec import OBJECTIVES

    assert tuple(PLACE_OBJECTIVES) == tuple(OBJECTIVES)
