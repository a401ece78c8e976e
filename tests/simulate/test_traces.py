"""Trace readers reject bad files with the file, line number and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwise.errors import SpecError
from fleetwise.workload.traces import bundled_trace, load_trace


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_missing_column_is_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.68,10\n")
    with pytest.raises(SpecError, match=r"t.csv:1: missing column\(s\) GeneratedTokens"):
        load_trace(p)


def test_negative_length_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "arrival_s,input_tokens,output_tokens\n0,10,5\n1,-3,5\n")
    with pytest.raises(SpecError, match=r"t.csv:3: input_tokens must be a whole number >= 0 \(got '-3'\)"):
        load_trace(p)


def test_unsorted_times_name_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "arrival_s,input_tokens,output_tokens\n0,10,5\n2,10,5\n1,10,5\n")
    with pytest.raises(SpecError, match=r"t.csv:4: arrival times must be sorted"):
        load_trace(p)


def test_non_numeric_time_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,1,1\nsoon,1,1\n")
    with pytest.raises(SpecError, match=r"t.csv:3: TIMESTAMP must read"):
        load_trace(p)


def test_jsonl_missing_field_and_bad_number(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{"timestamp": 5}\n')
    with pytest.raises(SpecError, match=r"t.jsonl:2: missing field\(s\) input_length, output_length"):
        load_trace(p)
    q = _write(tmp_path, "u.jsonl", '{"timestamp": "x", "input_length": 1, "output_length": 1}\n')
    with pytest.raises(SpecError, match=r"u.jsonl:1: timestamp must be a number"):
        load_trace(q)


def test_bundled_azure_conversation_trace_matches_its_readme() -> None:
    t = bundled_trace("azure_conv")
    assert len(t) == 19366
    assert t.arrival_s[-1] == pytest.approx(3501.7, abs=0.1)
    assert t.input_tokens.mean() == pytest.approx(1155, abs=1)
