"""Validation cases in the published format (``validation/FORMAT.md``), parsed into frozen models.

Entry point: ``load_cases(path)`` returns ``(cases, errors)``: a malformed case becomes an error naming
its id and field, and the other cases still load. A malformed file raises ``SpecError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwise.catalog.loader import format_validation_error, load_yaml_file
from fleetwise.catalog.types import Precision
from fleetwise.errors import SpecError
from fleetwise.plan import Recompute

TRAINING_METRICS = ("step_time_s", "tflops_per_chip", "mfu", "tokens_per_s_per_chip", "time_to_train_days",
                    "chip_hours")
INFERENCE_METRICS = ("output_tokens_per_s", "output_tokens_per_s_per_chip", "input_tokens_per_s_per_chip",
                     "ttft_ms", "tpot_ms")
ENERGY_METRICS = ("energy_mwh", "avg_power_w_per_chip", "energy_j_per_token", "avg_power_w")
ALL_METRICS = TRAINING_METRICS + INFERENCE_METRICS + ENERGY_METRICS


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TrainingFields(_Strict):
    seq_len: int | None = Field(default=None, ge=1)
    global_batch: int | None = Field(default=None, ge=1)
    tokens: float | None = Field(default=None, gt=0)
    tp: int | None = Field(default=None, ge=1)
    pp: int | None = Field(default=None, ge=1)
    dp: int | None = Field(default=None, ge=1)
    cp: int | None = Field(default=None, ge=1)
    ep: int | None = Field(default=None, ge=1)
    micro_batch: int | None = Field(default=None, ge=1)
    vpp: int | None = Field(default=None, ge=1)
    sequence_parallel: bool | None = None
    recompute: Recompute | None = None
    zero: int | None = Field(default=None, ge=0, le=3)
    fine_tune: dict[str, Any] | None = None


class InferenceFields(_Strict):
    input_tokens: float | None = Field(default=None, gt=0)
    output_tokens: float | None = Field(default=None, gt=0)
    batch: int | None = Field(default=None, ge=1)
    request_rate: float | None = Field(default=None, gt=0)
    mode: Literal["offline", "server", "prefill_only", "decode_only"] = "offline"
    tp: int | None = Field(default=None, ge=1)
    pp: int | None = Field(default=None, ge=1)
    ep: int | None = Field(default=None, ge=1)
    dp: int | None = Field(default=None, ge=1)
    weight_precision: Literal["fp16", "bf16", "fp8", "int8", "int4", "fp4"] | None = None
    kv_precision: Literal["fp16", "bf16", "fp8", "int8", "int4"] | None = None
    disaggregated: dict[str, int] | None = None
    slo: dict[str, float] | None = None


class Case(_Strict):
    """One published measurement with the configuration needed to predict it."""

    id: str
    kind: Literal["training", "inference"]
    source: str
    url: str | None = None
    sweep: str | None = Field(default=None, min_length=1, description="id shared by the runs of one measured sweep")
    model: str
    model_overrides: dict[str, Any] | None = None
    hardware: str
    hardware_overrides: dict[str, Any] | None = None
    system: str | None = None
    system_overrides: dict[str, Any] | None = None
    chips: int | None = Field(default=None, ge=1, description="null: not published (inference only)")
    precision: Precision | None = None
    pue: float | None = Field(default=None, ge=1.0, le=3.0)
    power_boundary: Literal["chip", "node"] | None = None
    flops_convention: Literal["model", "hardware"] | None = None
    training: TrainingFields | None = None
    inference: InferenceFields | None = None
    measured: dict[str, float]
    notes: str | None = None
    complete: bool | None = None


    @property
    def source_key(self) -> str:
        """What counts as one source for leave-one-source-out: the URL, else the citation."""
        return self.url or self.source


def load_cases(path: Path) -> tuple[list[Case], list[dict[str, str]]]:
    """Parse a case file; returns the valid cases and an error per invalid case."""
    data = load_yaml_file(path)
    if not isinstance(data, list):
        raise SpecError(f"{path}: expected a list of cases, got {type(data).__name__}")
    cases: list[Case] = []
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        cid = str(raw.get("id", f"#{i}")) if isinstance(raw, dict) else f"#{i}"
        where = f"{path} case {cid}"
        try:
            case = Case.model_validate(raw)
        except ValidationError as exc:
            errors.append({"id": cid, "message": format_validation_error(where, exc)})
            continue
        unknown = [k for k in case.measured if k not in ALL_METRICS]
        if unknown:
            errors.append({"id": cid, "message": f"{where}: measured.{unknown[0]}: unknown metric "
                           f"(allowed: {', '.join(ALL_METRICS)})"})
            continue
        if case.id in seen:
            errors.append({"id": cid, "message": f"{where}: id: duplicate case id"})
            continue
        seen.add(case.id)
        cases.append(case)
    return cases, errors
