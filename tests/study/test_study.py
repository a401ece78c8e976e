"""Studies are values: exact JSON round trip, content-hashed ids, bounded and located errors."""

from __future__ import annotations

import json

import pytest

from fleetwise.api import run_study
from fleetwise.errors import SpecError
from fleetwise.study import Study


def test_plan_train_study_round_trips_exactly() -> None:
    s = run_study("plan_train", {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "chips": 8, "top": 3})
    back = Study.from_json(s.to_json())
    assert back == s
    assert back.to_json() == s.to_json()
    assert back.id == s.id and len(s.rows) == 3
    assert s.inputs["global_batch"] >= 1 and s.inputs["seq_len"] == 4096


def test_explain_of_a_searched_row_reproduces_its_step_time() -> None:
    s = run_study("plan_train", {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "chips": 8, "top": 2})
    row = s.rows[1]
    e = run_study("explain_train", {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "plan": row["plan"],
                                    "global_batch": s.inputs["global_batch"]})
    assert e.rows[0]["step_time_s"] == row["step_time_s"]


def test_same_question_same_id_and_different_question_different_id() -> None:
    a = Study("plan_train", {"model": "m", "chips": 8}, {"rows": []})
    b = Study("plan_train", {"chips": 8, "model": "m"}, {"rows": [{"x": 1}]})
    c = Study("plan_train", {"model": "m", "chips": 16})
    assert a.id == b.id != c.id
    assert a != b


def test_a_study_does_not_share_state_with_its_inputs() -> None:
    inputs = {"model": "m", "pinned": {"tp": 2}}
    s = Study("plan_train", inputs)
    inputs["pinned"]["tp"] = 4
    assert s.inputs["pinned"]["tp"] == 2


@pytest.mark.parametrize("text, field", [
    ("[]", "a study must be a JSON object"),
    ('{"kind": "nope", "inputs": {}}', "study kind must be one of"),
    ('{"kind": "plan_train"}', "missing field 'inputs'"),
    ('{"kind": "plan_train", "inputs": {}, "extra": 1}', "unknown study field"),
    ('{"kind": "plan_train", "inputs": {}, "id": "0000"}', "does not match the content"),
    ("{" * 100_000, "not valid JSON"),
    ('{"kind": "plan_train", "inputs": {"x": NaN}}', "finite"),
])
def test_bad_study_json_names_the_problem_briefly(text: str, field: str) -> None:
    with pytest.raises(SpecError) as err:
        Study.from_json(text)
    assert field in str(err.value)
    assert len(str(err.value)) <= 300


def test_non_json_inputs_are_rejected() -> None:
    with pytest.raises(SpecError, match="must be JSON data"):
        Study("plan_train", {"model": object()})


def test_save_writes_whole_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Study("plan_train", {"model": "m"}, {"rows": [{"a": 1.5}]})
    p = s.save(tmp_path / "s.json")
    assert Study.load(p) == s
    assert json.loads(p.read_text())["id"] == s.id
    assert [f.name for f in tmp_path.iterdir()] == ["s.json"]


def test_numpy_scalars_become_plain_numbers() -> None:
    import numpy as np

    s = Study("plan_train", {"n": np.int64(3), "ok": np.bool_(True), "x": np.float64(0.5)})
    assert s.inputs == {"n": 3, "ok": True, "x": 0.5}
