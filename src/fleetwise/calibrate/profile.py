"""The device profile file: its schema (the measured-efficiency.yaml conventions plus a ``profile:`` header).

Entry points: ``load_profile(path, hardware)`` validates a profile for one chip and returns it as plain
mappings; ``dump_profile(doc, path)`` writes one. Every problem names the file, the entry and the field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleetwise.catalog.loader import load_yaml_file, validated
from fleetwise.errors import SpecError, cut, shown

Entry = dict[str, Any]
SECTIONS = ("gemm", "attention", "memory_bandwidth", "collectives", "overheads")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Measured(_Strict):
    value: float | None
    unit: str

    @field_validator("value")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and v > 0):
            raise ValueError(f"must be a finite number > 0 (or null), got {v}")
        return v


class PctOfPeak(_Strict):
    value: float = Field(gt=0)
    peak: float = Field(gt=0)
    peak_basis: str


class Header(_Strict):
    """``profile:``: what was measured, where and with what."""

    format: str
    hardware: str
    backend: str
    device: str
    device_kind: Literal["cpu", "cuda", "npu", "published"]
    device_count: int = Field(ge=1)
    libraries: dict[str, str]
    host: str = ""
    date: str
    quick: bool = False
    load_average: float | None = None
    blas_threads: dict[str, str] = {}
    skipped: list[str] = []


class _Common(_Strict):
    chip: str
    measured: Measured
    pct_of_peak: PctOfPeak | None = None
    conditions: str | dict[str, Any]
    source: dict[str, Any]
    confidence: Literal["high", "medium", "low"]
    timings: dict[str, Any] | None = None
    notes: str | None = None
    derived: str | None = None


class GemmEntry(_Common):
    precision: str
    op: str
    shape: dict[str, int | str]


class AttentionEntry(_Common):
    precision: str
    kernel: str
    direction: str
    shape: dict[str, Any]


class StreamEntry(_Common):
    method: str
    working_set: str


class CollectiveEntry(_Common):
    kind: str
    collective: str
    group_size: int = Field(ge=2)
    nodes: int = Field(ge=1)
    metric: str
    fabric: str | None = None
    algorithm: str | None = None
    message_size: str | None = None
    points: list[dict[str, Any]] | None = None


class OverheadEntry(_Common):
    kind: str
    detail: str | None = None


MODELS: dict[str, type[_Common]] = {"gemm": GemmEntry, "attention": AttentionEntry, "memory_bandwidth": StreamEntry,
                                    "collectives": CollectiveEntry, "overheads": OverheadEntry}


def check_profile(doc: Any, where: str, hardware: str) -> Entry:
    """``doc`` validated as a profile of ``hardware``; a ``SpecError`` names ``where``, the entry and the field."""
    if not isinstance(doc, dict):
        raise SpecError(f"{where}: expected a mapping with 'profile' and {', '.join(SECTIONS)}, "
                        f"got {type(doc).__name__}")
    unknown = sorted(set(doc) - {"profile", *SECTIONS})
    if unknown:
        raise SpecError(f"{where}: {shown(unknown[0])}: unknown section (allowed: profile, {', '.join(SECTIONS)})")
    if "profile" not in doc:
        raise SpecError(f"{where}: profile: missing (the header naming hardware, backend, device, libraries, date)")
    header = validated(Header, f"{where}: profile", doc["profile"] if isinstance(doc["profile"], dict) else {})
    if header.hardware != hardware:
        raise SpecError(f"{where}: profile.hardware: the profile is of {shown(header.hardware)}, not of "
                        f"--hardware {shown(hardware)}")
    out: Entry = {"profile": header.model_dump()}
    for section in SECTIONS:
        entries = doc.get(section) or []
        if not isinstance(entries, list):
            raise SpecError(f"{where}: {section}: expected a list of entries, got {type(entries).__name__}")
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise SpecError(f"{where}: {section}[{i}]: expected a mapping, got {type(e).__name__}")
            entry = validated(MODELS[section], f"{where}: {section}[{i}]", e)
            if entry.chip != hardware:
                raise SpecError(f"{where}: {section}[{i}].chip: {shown(entry.chip)} is not --hardware "
                                f"{shown(hardware)} (a profile holds one chip's measurements)")
        out[section] = entries
    if not any(out[s] for s in SECTIONS):
        raise SpecError(f"{where}: no measurements (every one of {', '.join(SECTIONS)} is empty)")
    return out


def load_profile(path: Path, hardware: str) -> Entry:
    """Read and validate the profile at ``path`` for chip ``hardware``.

    Args:
        path: a profile written by ``fleetwise calibrate bench`` (or by hand, same conventions).
        hardware: the catalog accelerator id it must be of.

    Returns:
        The profile as plain mappings (``profile`` header, then the five sections, each a list).
    """
    return check_profile(load_yaml_file(Path(path)), str(path), hardware)


def check_writable(path: Path) -> None:
    """Refuse, before minutes of measurement, a profile path whose folder cannot be made or written."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        ok = os.access(Path(path).parent, os.W_OK) and not Path(path).is_dir()
    except OSError:
        ok = False
    if not ok:
        raise SpecError(f"{cut(str(path), 200)}: cannot write the profile there (--out)")


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full (no anchors or aliases): a profile reads the same to any YAML tool."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_profile(doc: Entry, path: Path) -> None:
    """Write a profile (header comment, then YAML in file order)."""
    head = ("# fleetwise device profile: micro-benchmarks in the measured-efficiency.yaml conventions\n"
            "# (GEMM TFLOP/s = 2MNK/t; attention fwd 4BHS^2D, bwd 2.5x fwd; streams bytes read + written per s;\n"
            "# collectives busbw as nccl-tests; overheads in us). Timings: median of repeats, warm-up excluded.\n")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(head + yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, width=110),
                              encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{cut(str(path), 200)}: cannot write the profile ({exc.strerror})") from None
