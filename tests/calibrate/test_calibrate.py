"""fleetwise calibrate: the numpy bench writes a valid profile of the host CPU, the fit recovers known parameters
from a synthetic profile and refuses bad ones, and a fit on published A100 entries changes the A100 predictions."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwise.calibrate.bench import run_bench
from fleetwise.calibrate.compare import compare_folder
from fleetwise.calibrate.device import fit_device, write_catalog
from fleetwise.calibrate.profile import check_profile, dump_profile, load_profile
from fleetwise.catalog.loader import load_catalog
from fleetwise.cli.main import main
from fleetwise.errors import FleetwiseError, SpecError
from fleetwise.perf.efficiency import load_efficiency

DATA = Path(__file__).parents[1] / "data" / "calibrate"
H200 = "nvidia_h200_sxm"
A100 = "nvidia_a100_80gb_sxm"


@pytest.fixture(scope="module")
def cpu_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "cpu.yaml"
    assert main(["calibrate", "bench", "--hardware", H200, "--out", str(path), "--quick"]) == 0
    return path


def test_numpy_bench_writes_a_valid_profile_of_the_host_cpu(cpu_profile: Path) -> None:
    doc = load_profile(cpu_profile, H200)  # schema-checked: raises on any missing or malformed field
    head = doc["profile"]
    assert head["backend"] == "numpy" and head["device_kind"] == "cpu" and head["device"].startswith("host CPU")
    assert any(s.startswith("attention:") for s in head["skipped"])
    assert any(s.startswith("collectives:") for s in head["skipped"])
    entries = doc["gemm"] + doc["memory_bandwidth"] + doc["overheads"]
    assert len(doc["gemm"]) >= 3 and doc["memory_bandwidth"] and doc["overheads"]
    for e in entries:
        assert e["measured"]["value"] > 0
        assert {"backend", "libraries", "device", "date"} <= set(e["conditions"])
        assert "numpy" in e["conditions"]["libraries"]
        t = e["timings"]
        assert t["min_s"] <= t["median_s"] <= t["max_s"] and len(t["samples_s"]) == t["repeats"] >= 3
        assert "pct_of_peak" not in e  # the H200's peaks say nothing about the host CPU


def test_a_cpu_profile_is_not_fitted_as_the_accelerator(cpu_profile: Path) -> None:
    acc = load_catalog([]).accelerator(H200)
    with pytest.raises(SpecError, match=r"cpu.yaml: profile.device_kind: measured on the host CPU"):
        fit_device(load_profile(cpu_profile, H200), acc, str(cpu_profile))


def _entry(**body: Any) -> dict[str, Any]:
    return {"chip": H200, "conditions": {"backend": "synthetic"}, "source": {"citation": "test"},
            "confidence": "high", **body}


def synthetic_profile(e_max: float, t0_s: float, attn: tuple[float, float, float], hbm: float,
                      busbw: tuple[float, float]) -> dict[str, Any]:
    """Measurements generated from known parameters with the model's own formulas."""
    acc = load_catalog([]).accelerator(H200)
    peak = acc.peak_tflops.bf16 or 0.0
    gemm = []
    for m, n, k in ((1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
                    (16384, 16384, 16384), (4096, 8192, 2048)):
        t = 2.0 * m * n * k / (peak * 1e12 * e_max) + t0_s
        gemm.append(_entry(precision="bf16", op="torch.matmul", shape={"M": m, "N": n, "K": k},
                           measured={"value": 2.0 * m * n * k / t / 1e12, "unit": "TFLOP/s"}))
    fwd, bwd, s_half = attn
    attention = []
    for s in (512, 1024, 2048, 4096, 8192, 16384):
        for direction, e in (("fwd", fwd), ("bwd", bwd)):
            eff = e * s / (s + s_half)
            attention.append(_entry(precision="bf16", kernel="sdpa", direction=direction,
                                    shape={"seqlen": s, "head_dim": 128, "causal": False},
                                    measured={"value": eff * peak, "unit": "TFLOP/s"},
                                    pct_of_peak={"value": 100 * eff, "peak": peak, "peak_basis": "bf16"}))
    streams = [_entry(method="copy", working_set="2 GiB", measured={"value": hbm * acc.hbm_tbps * 1e3, "unit": "GB/s"},
                      pct_of_peak={"value": 100 * hbm, "peak": acc.hbm_tbps * 1e3, "peak_basis": "hbm_tbps x 1000"})]
    b, h = busbw
    line = (acc.scaleup_gbps_bidir or 0) / 2
    points = [{"bytes": 2**p, "busbw_GBps": b * line * 2**p / (2**p + h)} for p in range(20, 31)]
    collectives = [_entry(kind="bandwidth", collective="all_reduce", group_size=8, nodes=1, metric="busbw",
                          points=points, measured={"value": max(p["busbw_GBps"] for p in points), "unit": "GB/s"})]
    header = {"format": "fleetwise device profile 1", "hardware": H200, "backend": "synthetic", "device": "H200",
              "device_kind": "cuda", "device_count": 8, "libraries": {}, "date": "2026-12-01"}
    return {"profile": header, "gemm": gemm, "attention": attention, "memory_bandwidth": streams,
            "collectives": collectives, "overheads": []}


def test_the_fit_recovers_the_parameters_a_profile_was_made_from(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.yaml"
    dump_profile(synthetic_profile(0.71, 9e-6, (0.62, 0.47, 300.0), 0.81, (0.8, 4e6)), path)
    fit = fit_device(load_profile(path, H200), load_catalog([]).accelerator(H200), str(path))
    row = fit.efficiency["chips"][H200]
    assert row["gemm"]["bf16"]["e_max"] == pytest.approx(0.71, rel=1e-3)
    assert row["gemm"]["bf16"]["t0_s"] == pytest.approx(9e-6, rel=1e-2)
    assert row["attention"]["fwd"] == pytest.approx(0.62, rel=0.01)
    assert row["attention"]["bwd"] == pytest.approx(0.47, rel=0.01)
    assert row["attention"]["s_half"] == pytest.approx(300.0, rel=0.03)  # the fitter's grid steps 1.7 %
    assert row["hbm"]["e"] == pytest.approx(0.81, rel=1e-3)
    col = fit.efficiency["collectives"][f"device_{H200}_scaleup"]
    assert col["busbw_frac"] == pytest.approx(0.8, rel=0.01) and col["s_half_bytes"] == pytest.approx(4e6, rel=0.05)
    # the folder is read back by the model: the chip's table now holds the fitted values
    write_catalog(fit, tmp_path / "dir", path)
    load_catalog([tmp_path / "dir"])
    try:
        table = load_efficiency()
        assert table.chip(H200).gemm["bf16"].e_max == pytest.approx(0.71, rel=1e-3)
        assert table.collective(H200, "scaleup").busbw_frac == pytest.approx(0.8, rel=0.01)
        assert table.collective("nvidia_h100_sxm", "scaleup").busbw_frac != col["busbw_frac"]  # others untouched
    finally:
        load_catalog([])


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["gemm"][2].update(chip="nvidia_h100_sxm"), r"bad.yaml: gemm\[2\].chip: 'nvidia_h100_sxm' is not"),
    (lambda d: d["gemm"][0].pop("measured"), r"bad.yaml: gemm\[0\]: measured: Field required"),
    (lambda d: d["attention"][1]["measured"].update(value=-3.0), r"bad.yaml: attention\[1\]: measured.value"),
    (lambda d: d["profile"].update(hardware="amd_mi300x"), r"bad.yaml: profile.hardware: the profile is of 'amd_mi"),
    (lambda d: d["profile"].pop("date"), r"bad.yaml: profile: date: Field required"),
])
def test_a_bad_profile_is_refused_naming_the_file_and_field(tmp_path: Path, edit: Any, message: str) -> None:
    doc = copy.deepcopy(synthetic_profile(0.7, 8e-6, (0.6, 0.45, 300.0), 0.8, (0.8, 4e6)))
    edit(doc)
    path = tmp_path / "bad.yaml"
    dump_profile(doc, path)
    with pytest.raises(SpecError, match=message):
        load_profile(path, H200)


def test_a_fit_on_published_a100_entries_changes_the_a100_predictions(tmp_path: Path) -> None:
    profile = DATA / "a100_80gb_published.yaml"
    fit = fit_device(load_profile(profile, A100), load_catalog([]).accelerator(A100), str(profile))
    bundled_bf16 = load_efficiency().chip(A100).gemm["bf16"].e_max
    assert fit.efficiency["chips"][A100]["gemm"]["bf16"]["e_max"] != bundled_bf16  # the 80 GB sweep alone
    write_catalog(fit, tmp_path, profile)
    comp = compare_folder(tmp_path, [DATA / "cases.yaml"])
    assert comp.chips == (A100,)
    assert {r.case_id for r in comp.rows} == {"megatron21-gpt-1.7b-32", "korthikanti22-gpt-22b-8",
                                                "bloom-176b-a100-384"}  # the H100 case is not run
    assert comp.changed == len(comp.rows) and all(r.before != r.after for r in comp.rows)
    out = comp.to_json()
    assert out["summary"]["training"]["before"]["count"] == out["summary"]["training"]["after"]["count"] == 3
    assert load_efficiency().chip(A100).gemm["bf16"].e_max == bundled_bf16  # the process's layers are restored


def test_compare_prints_before_and_after(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = DATA / "a100_80gb_published.yaml"
    assert main(["calibrate", "fit", str(profile), "--hardware", A100, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "efficiency.yaml").is_file() and "GEMM eff" in (tmp_path / "residuals.txt").read_text()
    assert yaml.safe_load((tmp_path / "efficiency.yaml").read_text())["chips"][A100]["gemm"]["fp16"]["n_points"] == 7
    capsys.readouterr()
    assert main(["calibrate", "compare", str(tmp_path), str(DATA / "cases.yaml")]) == 0
    out = capsys.readouterr().out
    assert "megatron21-gpt-1.7b-32" in out and " -> " in out and "summary" in out


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "fit", "missing.yaml", "--hardware", A100, "--out", "x"], "missing.yaml: cannot read file"),
    (["calibrate", "fit", str(DATA / "a100_80gb_published.yaml"), "--hardware", "nope", "--out", "x"],
     "unknown accelerator id 'nope'"),
    (["calibrate", "bench", "--hardware", H200, "--out", "x.yaml", "--device", "cuda"],
     "--device: the numpy backend measures the host CPU only"),
    (["calibrate", "compare", "no-such-dir"], "no-such-dir: no such catalog folder"),
    (["calibrate", "bench", "--hardware", H200, "--out", "/dev/null/p.yaml", "--quick"],
     "/dev/null/p.yaml: cannot write the profile"),
])
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fleetwise: error: ") and message in err


def test_the_torch_backend_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(FleetwiseError, match=r"fleetwise\[calibrate\]"):
        run_bench(load_catalog([]).accelerator(H200), "torch", "cuda", True)


def test_check_profile_refuses_an_unknown_section() -> None:
    with pytest.raises(SpecError, match="p.yaml: 'gemms': unknown section"):
        check_profile({"profile": {}, "gemms": []}, "p.yaml", H200)


def test_a_fit_far_below_any_chip_is_refused_as_another_device(tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"  # e.g. a CPU run labelled as the GPU: 0.2 % of the H200's peak
    dump_profile(synthetic_profile(0.002, 9e-6, (0.62, 0.47, 300.0), 0.81, (0.8, 4e6)), path)
    with pytest.raises(SpecError, match=r"slow.yaml: fitted gemm.bf16.e_max = 0.002 .* outside 0.05-1.0"):
        fit_device(load_profile(path, H200), load_catalog([]).accelerator(H200), str(path))


def test_fit_never_overwrites_a_hand_made_efficiency_file(tmp_path: Path) -> None:
    (tmp_path / "efficiency.yaml").write_text("chips: {}\n")
    profile = DATA / "a100_80gb_published.yaml"
    fit = fit_device(load_profile(profile, A100), load_catalog([]).accelerator(A100), str(profile))
    with pytest.raises(SpecError, match="efficiency.yaml: exists and was not written by"):
        write_catalog(fit, tmp_path, profile)
    assert (tmp_path / "efficiency.yaml").read_text() == "chips: {}\n"


def test_timings_leave_out_the_warm_up_and_take_the_median() -> None:
    from fleetwise.calibrate.bench import Plan, time_kernel

    calls = []

    def run() -> None:  # the first call pays a 50 ms setup (a cold cache, a lazy init); the others ~nothing
        calls.append(1)
        if len(calls) == 1:
            import time

            time.sleep(0.05)

    t = time_kernel(run, lambda: None, Plan((), (), 1, 1, repeats=5, warmup=1, min_sample_s=1e-4))
    assert t["median_s"] < 1e-3 and t["max_s"] < 0.05  # the slow first call is in no sample
    assert len(t["samples_s"]) == 5 and t["warmup_calls"] == 1 and t["calls_per_sample"] >= 1


def test_a_kernel_as_short_as_a_launch_is_marked_host_bound_and_left_out() -> None:
    from fleetwise.calibrate.bench import _host_bound

    def entry(median_s: float) -> dict[str, Any]:
        return {"confidence": "high", "timings": {"median_s": median_s}}

    short, long = _host_bound([entry(8e-6), entry(5e-4)], launch_s=5e-6)
    assert short["confidence"] == "low" and "host-bound" in short["notes"]
    assert long["confidence"] == "high" and "notes" not in long
