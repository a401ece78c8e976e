"""An MFU above the best published on a chip is flagged with that ceiling and its source; below it, not."""

from __future__ import annotations

import yaml

from fleetwise.api import run_study
from fleetwise.perf.plausibility import DATA_FILE, mfu_note
from fleetwise.validate.cases import load_cases
from fleetwise.validate.specs import bundled_case_files


def test_the_ceiling_is_a_published_measurement() -> None:
    table = yaml.safe_load(DATA_FILE.read_text())["chips"]
    cases = {c.id: c for f in bundled_case_files() for c in load_cases(f)[0]}
    for chip, best in table.items():
        case = cases[best["case"]]
        assert case.hardware == chip and case.kind == "training"


def test_above_the_ceiling_is_flagged_and_below_is_not() -> None:
    best = yaml.safe_load(DATA_FILE.read_text())["chips"]["nvidia_a100_80gb_sxm"]["mfu"]
    assert mfu_note("nvidia_a100_80gb_sxm", best - 0.01) is None
    note = mfu_note("nvidia_a100_80gb_sxm", best + 0.05)
    assert note is not None and note["best_published_mfu"] == best and "upper bound" in note["why"]
    assert mfu_note("no_such_chip", 0.99) is None  # nothing published: nothing to compare with


def test_a_plan_study_row_carries_the_note_exactly_when_its_mfu_is_above() -> None:
    s = run_study("plan_train", {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "chips": 8, "top": 3})
    best = yaml.safe_load(DATA_FILE.read_text())["chips"]["nvidia_h100_sxm"]["mfu"]
    for row in s.rows:
        assert ("plausibility" in row) == (row["mfu"] > best)
