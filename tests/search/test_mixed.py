"""Mixed-fleet training: chip budgets respected, layers split toward the faster chip, no free lunch."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetwise.api import compare_mixed_training
from fleetwise.catalog import Catalog, load_catalog
from fleetwise.errors import SpecError, UnknownIdError
from fleetwise.plan import TrainingJob
from fleetwise.search.fleet import FleetPart, parse_fleet
from fleetwise.search.mixed import search_mixed_training

FLEET = {"huawei_ascend_910b": 64, "nvidia_h20": 32}


@pytest.fixture(scope="module")
def result(catalog: Catalog):  # type: ignore[no-untyped-def]
    return compare_mixed_training("llama2-13b", FLEET, seq_len=4096, global_batch=192, catalog=catalog)


def test_mixed_plans_respect_each_chip_budget(result) -> None:  # type: ignore[no-untyped-def]
    assert result.mixed.best
    for p in result.mixed.best:
        for hw, used in p.chips_used.items():
            assert used <= FLEET[hw]
        assert sum(p.layers.values()) == 40  # llama2-13b


def test_faster_chip_gets_more_layers_per_stage(result) -> None:  # type: ignore[no-untyped-def]
    p = result.mixed.best[0]
    per_stage = {hw: p.layers[hw] / p.stages[hw] for hw in p.stages}
    assert per_stage["huawei_ascend_910b"] > per_stage["nvidia_h20"]  # 313 vs 148 dense bf16 TFLOP/s


def test_stage_times_are_balanced(result) -> None:  # type: ignore[no-untyped-def]
    t = result.mixed.best[0].stage_time_s
    assert max(t.values()) / min(t.values()) < 1.25


def test_mixing_a_chip_with_itself_never_beats_the_homogeneous_fleet(tmp_path: Path) -> None:
    base = load_catalog([]).accelerator("huawei_ascend_910b").model_dump(exclude_none=True)
    base["id"] = "clone_910b"
    (tmp_path / "accelerators").mkdir()
    (tmp_path / "accelerators" / "clone_910b.yaml").write_text(yaml.safe_dump(base))
    catalog = load_catalog([tmp_path])
    m = catalog.model("llama2-13b")
    job = TrainingJob(seq_len=4096, global_batch=128)
    a, b = catalog.accelerator("huawei_ascend_910b"), catalog.accelerator("clone_910b")
    sys_a = catalog.default_system(a.id)
    mixed = search_mixed_training((FleetPart(a, sys_a, 32), FleetPart(b, sys_a, 32)), m, job, top=1)
    from fleetwise.api import plan_training

    homogeneous = plan_training(m, a.id, 64, seq_len=4096, global_batch=128, top=1, catalog=catalog).best[0]
    assert mixed.best[0].step_time_s >= homogeneous.step_time_s * 0.999


def test_fleet_strings_are_checked(catalog: Catalog) -> None:
    parts = parse_fleet("huawei_ascend_910b:512,nvidia_h20:256", catalog)
    assert [(p.accel.id, p.chips) for p in parts] == [("huawei_ascend_910b", 512), ("nvidia_h20", 256)]
    with pytest.raises(SpecError, match="positive integer"):
        parse_fleet("huawei_ascend_910b:-5,nvidia_h20:8", catalog)
    with pytest.raises(UnknownIdError):
        parse_fleet("huawei_ascend_911:8,nvidia_h20:8", catalog)


def test_bubble_holds_one_pass_of_every_other_stage(result) -> None:  # type: ignore[no-untyped-def]
    # 1F1B with unequal stages: (m - 1) t_max + sum_i t_i, so the bubble is below pp - 1 slowest-stage times
    for p in result.mixed.best:
        t, n = p.stage_time_s, p.stages
        others = sum(n[k] * t[k] for k in t) - max(t.values())
        assert p.breakdown_s["bubble_s"] == pytest.approx(others, rel=1e-9)
        if len(set(round(v, 9) for v in t.values())) > 1:
            assert p.breakdown_s["bubble_s"] < (sum(n.values()) - 1) * max(t.values())
