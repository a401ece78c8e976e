"""Sweeps: grid validation before any work, resumable Parquet output, identical rows on every backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwise.catalog import Catalog
from fleetwise.cli.main import main
from fleetwise.errors import SpecError
from fleetwise.sweep import match_curve, parse_grid, plot, read_rows, run_sweep, summary

SMALL = {"kind": "train", "models": ["gpt3-125m", "gpt3-350m"], "hardware": ["nvidia_h100_sxm", "huawei_ascend_910b"],
         "chips": [1, 2], "workloads": [{"name": "s2k", "seq_len": 2048}], "objectives": ["time"]}


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(sorted(r.items())) for r in rows]


def test_bad_grids_fail_before_any_work(tmp_path: Path, catalog: Catalog,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SpecError, match=r"unknown model id 'gpt5'.*models\[1\]"):
        parse_grid({**SMALL, "models": ["gpt3-125m", "gpt5"]}, "g.yaml", catalog)
    with pytest.raises(SpecError, match=r"unknown accelerator id"):
        parse_grid({**SMALL, "hardware": ["nvidia_h1000"]}, "g.yaml", catalog)
    with pytest.raises(SpecError, match="chips is empty"):
        parse_grid({**SMALL, "chips": []}, "g.yaml", catalog)
    with pytest.raises(SpecError, match="workloads is empty"):
        parse_grid({**SMALL, "workloads": []}, "g.yaml", catalog)
    with pytest.raises(SpecError, match="unknown field 'model'"):
        parse_grid({**SMALL, "model": "x"}, "g.yaml", catalog)
    with pytest.raises(SpecError, match="objectives\\[0\\] must be one of"):
        parse_grid({**SMALL, "objectives": ["speed"]}, "g.yaml", catalog)
    huge = {**SMALL, "models": ["gpt3-125m"], "hardware": ["nvidia_h100_sxm"],
            "chips": {"start": 1, "stop": 10_000_000}}
    assert len(parse_grid(huge, "g.yaml", catalog, yes=True)) == 10_000_000  # counted, never materialised
    grid = tmp_path / "huge.yaml"
    grid.write_text(yaml.safe_dump(huge))
    assert main(["sweep", str(grid), "--out", str(tmp_path / "huge.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "10,000,000 scenarios" in err[0] and "--yes" in err[0]
    assert not (tmp_path / "huge.parquet").exists() and not (tmp_path / "huge.parquet.parts").exists()
    small = parse_grid(SMALL, "g.yaml", catalog)
    with pytest.raises(SpecError, match="does not apply to --backend serial"):
        run_sweep(small, tmp_path / "x.parquet", backend="serial", workers=2)
    with pytest.raises(SpecError, match="--address applies to --backend ray only"):
        run_sweep(small, tmp_path / "x.parquet", address="ray://head:10001")
    assert not (tmp_path / "x.parquet").exists()


def test_listed_scenarios_and_summary(tmp_path: Path, catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    g = parse_grid({"kind": "train", "workloads": [{"name": "s2k", "seq_len": 2048}],
                    "scenarios": [{"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 1},
                                  {"model": "gpt3-125m", "system": "nvidia_dgx_h100_h200", "chips": 2,
                                   "objective": "energy"}]}, "g.yaml", catalog)
    assert g.rows is not None and g.rows[1]["hardware"] == catalog.system("nvidia_dgx_h100_h200").accelerator_id
    res = run_sweep(g, tmp_path / "l.parquet", backend="serial")
    assert [r["chips"] for r in res.rows] == [1, 2] and res.rows[1]["objective"] == "energy"
    assert res.rows[0]["status"] == "ok" and res.rows[0]["tokens_per_s"] > 0
    assert "gpt3-125m / s2k" in summary(res.rows)
    grid = tmp_path / "listed.yaml"
    grid.write_text(yaml.safe_dump({"kind": "train", "workloads": [{"name": "s2k", "seq_len": 2048}],
                                    "scenarios": [{"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 1}]}))
    assert main(["sweep", str(grid), "--backend", "serial"]) == 0  # default output: the grid's name, .parquet
    out = capsys.readouterr().out
    assert "1 computed, 0 reused" in out and (tmp_path / "listed.parquet").is_file()


def test_serve_grid_rows(tmp_path: Path, catalog: Catalog) -> None:
    g = parse_grid({"kind": "serve", "models": ["gpt3-1.3b"], "hardware": ["nvidia_h100_sxm"], "chips": [1],
                    "workloads": [{"name": "chat", "input_tokens": 1000, "output_tokens": 200, "ttft_ms": 2000,
                                   "tpot_ms": 100}]}, "serve.yaml", catalog)
    calls: list[tuple[int, int]] = []
    r = run_sweep(g, tmp_path / "s.parquet", backend="serial", progress=lambda d, t, _s: calls.append((d, t))).rows[0]
    assert calls == [(0, 1), (1, 1)]  # the progress bar sees the start and every finished batch
    assert r["status"] == "ok" and r["objective"] == "cost" and r["plan_chips"] == 1
    assert r["goodput_rps"] > 0 and r["tpot_s"] <= 0.1 and r["ttft_s"] <= 2.0
    with pytest.raises(SpecError, match="needs input_tokens"):
        parse_grid({"kind": "serve", "models": ["gpt3-1.3b"], "hardware": ["nvidia_h100_sxm"], "chips": [1],
                    "workloads": [{"name": "chat", "ttft_ms": 2000, "tpot_ms": 100}]}, "serve.yaml", catalog)


def test_killed_sweep_resumes_without_recomputing(tmp_path: Path, catalog: Catalog) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "r.parquet"
    parts = tmp_path / "r.parquet.parts"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "fleetwise.cli.main", "sweep", str(grid), "--out", str(out),
                             "--backend", "serial", "--batch", "1", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(list(parts.glob("part-*.parquet"))) < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {r["scenario_id"]: r for p in parts.glob("part-*.parquet") for r in read_rows(p)}
    assert 2 <= len(finished) < 8 and not out.exists(), "the sweep was not killed halfway"
    g = parse_grid(yaml.safe_load(grid.read_text()), str(grid), catalog)
    res = run_sweep(g, out, backend="serial")
    assert res.reused == len(finished) and res.computed == len(g) - len(finished)
    assert len(res.rows) == len(g) and len({r["scenario_id"] for r in res.rows}) == len(g)
    for r in res.rows:  # the finished rows come back as they were written, not recomputed
        if r["scenario_id"] in finished:
            assert {k: v for k, v in r.items() if k != "index"} == \
                   {k: v for k, v in finished[r["scenario_id"]].items() if k != "index"}
    assert not parts.exists() and read_rows(out) == res.rows
    again = run_sweep(g, out, backend="serial")
    assert again.computed == 0 and again.reused == len(g)


def test_match_curve_and_plots(tmp_path: Path) -> None:
    rows = [{"status": "ok", "model": "m", "workload": "w", "objective": "time", "hardware": hw, "system": None,
             "chips": c, "tokens_per_s": t * c, "tokens_per_s_per_chip": t}
            for hw, t in (("ours", 60.0), ("theirs", 100.0)) for c in (1, 2, 4, 8)]
    # 1 of theirs = 100 tok/s: 2 of ours (120); 2 -> 4; 4 -> 8; 8 of theirs (800) is beyond 8 of ours (480)
    assert match_curve(rows, "ours", "theirs", "m", "w") == [(1, 2), (2, 4), (4, 8), (8, None)]
    pytest.importorskip("matplotlib")
    written = plot(rows, tmp_path / "plots", "ours", "theirs")
    assert [p.name for p in written] == ["throughput_m_w.png", "match_ours_vs_theirs_m_w.png"]
    assert all(p.stat().st_size > 1000 for p in written)


@pytest.fixture(scope="session")
def ray_cluster() -> Any:
    """A local Ray cluster, started once for the test session."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.filterwarnings("ignore")  # Ray's own start-up deprecation warnings
def test_backends_give_identical_rows(tmp_path: Path, catalog: Catalog, ray_cluster: Any) -> None:
    g = parse_grid(SMALL, "small", catalog)
    serial = run_sweep(g, tmp_path / "s.parquet", backend="serial")
    pool = run_sweep(g, tmp_path / "p.parquet", backend="process", workers=2)
    ray_rows = run_sweep(g, tmp_path / "r.parquet", backend="ray")
    assert pool.computed == ray_rows.computed == len(g) == 8
    assert _strip(serial.rows) == _strip(pool.rows) == _strip(ray_rows.rows)
    assert any(r["status"] == "ok" for r in serial.rows)


def test_a_lora_workload_is_a_fine_tune_and_its_rank_a_whole_number(tmp_path: Path, catalog: Catalog) -> None:
    with pytest.raises(SpecError, match=r"workloads\[0\]\.lora_rank must be a whole number"):
        parse_grid({**SMALL, "workloads": [{"name": "ft", "seq_len": 2048, "lora_rank": 8.5}]}, "g.yaml", catalog)
    g = parse_grid({"kind": "train", "workloads": [{"name": "full", "seq_len": 2048},
                                                   {"name": "ft", "seq_len": 2048, "lora_rank": 16}],
                    "models": ["gpt3-350m"], "hardware": ["nvidia_h100_sxm"], "chips": [2]}, "g.yaml", catalog)
    rows = {r["workload"]: r for r in run_sweep(g, tmp_path / "ft.parquet", backend="serial").rows}
    # no weight gradients or optimiser states for the frozen base: less memory per device
    assert rows["ft"]["status"] == rows["full"]["status"] == "ok"
    assert rows["ft"]["memory_per_device_gb"] < rows["full"]["memory_per_device_gb"]
