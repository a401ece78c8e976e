"""Reports of a study: the self-contained HTML (no outside URL loads), CSV of every row, charts and plots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetwise import api
from fleetwise.catalog import Catalog
from fleetwise.report.charts import breakdown_parts, study_charts
from fleetwise.report.html import study_html
from fleetwise.report.tables import plan_table, study_csv
from fleetwise.study import Study

INPUTS = {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 8, "seq_len": 2048, "top": 3,
          "pinned": {"tp": 1, "pp": 1, "recompute": "none", "zero": 1}}


@pytest.fixture(scope="module")
def study(catalog: Catalog) -> Study:
    return api.run_study("plan_train", INPUTS, catalog=catalog)


def test_html_report_is_self_contained(study: Study) -> None:
    html = study_html(study)
    assert "vegaEmbed" in html and "fw-data" in html
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # the markup around the inlined scripts
    assert markup.count("<script") == 1  # only the JSON data element is left
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", markup)  # nothing is loaded from anywhere
    assert len(html) > 500_000  # the three vendored libraries are inlined


def test_charts_cover_breakdown_and_both_pareto_fronts(study: Study) -> None:
    payload = study_charts(study)
    names = [c["name"] for c in payload["charts"]]
    assert names[:3] == ["breakdown", "pareto_memory", "pareto_energy"]
    fronts = {k for p in payload["plans"] for k in p["fronts"]}
    assert fronts == {"pareto", "pareto_time_energy"}
    for p in payload["plans"]:
        assert abs(sum(x["seconds"] for x in p["parts"]) - p["step_time_s"]) < 1e-3 * p["step_time_s"] + 1e-5


def test_comm_parts_are_labelled_with_their_tier() -> None:
    row = {"breakdown_s": {"compute_s": 1.0, "tp_comm_s": 0.2, "bubble_s": 0.0}, "comm_tiers": {"tp": "scale-up"}}
    assert breakdown_parts(row) == [{"part": "compute", "seconds": 1.0}, {"part": "tp comm (scale-up)",
                                                                          "seconds": 0.2}]


def test_table_and_csv_carry_every_row(study: Study) -> None:
    t = plan_table(study)
    assert len(t["rows"]) == len(study.rows) and t["columns"][:3] == ["#", "plan", "step time s"]
    lines = study_csv(study).splitlines()
    assert len(lines) == 1 + len(study.rows) and "plan.tp" in lines[0]


def test_plot_writes_png_and_svg(study: Study, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from fleetwise.report.plots import save_plot

    assert save_plot(study, tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert b"<svg" in save_plot(study, tmp_path / "p.svg").read_bytes()[:500]
    with pytest.raises(Exception, match=r"\.png or \.svg"):
        save_plot(study, tmp_path / "p.gif")


def test_rows_with_intervals_get_a_band_chart() -> None:
    rows = [{"ttft_s": 0.5 + i, "intervals": {"ttft_s": [0.4 + i, 0.7 + i]}, "tpot_s": 0.02, "tpot_s_lo": 0.01,
             "tpot_s_hi": 0.03} for i in range(3)]
    payload = study_charts(Study("plan_serve", {"model": "m"}, {"rows": rows}))
    bands = {c["name"]: c["spec"] for c in payload["charts"]}
    assert set(bands) == {"interval_ttft_s", "interval_tpot_s"}
    area = bands["interval_ttft_s"]["layer"][0]
    assert area["mark"]["type"] == "area" and area["encoding"]["y2"] == {"field": "hi"}
    assert [v["hi"] for v in bands["interval_ttft_s"]["data"]["values"]] == [0.7, 1.7, 2.7]
