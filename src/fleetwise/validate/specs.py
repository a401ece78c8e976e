"""The catalog specs of a validation case with its overrides applied, and the prediction type.

Entry points: ``resolve_specs(case, catalog)`` → (model, accelerator, system); ``CasePrediction``;
``bundled_case_files()`` (the shipped case files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error
from fleetwise.catalog.types import Accelerator, ModelArch, System
from fleetwise.errors import SpecError
from fleetwise.validate.cases import Case

BUNDLED_CASES = Path(__file__).parent / "data"


@dataclass(frozen=True, slots=True)
class CasePrediction:
    case: Case
    chosen: dict[str, Any]
    predicted: dict[str, float]
    notes: tuple[str, ...] = ()

    def errors(self) -> dict[str, float]:
        return {k: (self.predicted[k] - v) / v for k, v in self.case.measured.items() if k in self.predicted}


def _apply(spec: Any, overrides: dict[str, Any] | None, where: str, field_name: str) -> Any:
    if not overrides:
        return spec
    data = spec.model_dump()
    for k, v in overrides.items():
        if k.endswith("_tflops") or k == "int8_tops":
            data.setdefault("peak_tflops", {})[k.split("_")[0]] = v
        else:
            data[k] = v
    try:
        return type(spec).model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(f"{where}: {field_name}", exc)) from None


def resolve_specs(case: Case, catalog: Catalog) -> tuple[ModelArch, Accelerator, System | None]:
    where = f"case {case.id}"
    model = _apply(catalog.model(case.model, "model"), case.model_overrides, where, "model_overrides")
    accel = _apply(catalog.accelerator(case.hardware, "hardware"), case.hardware_overrides, where, "hardware_overrides")
    system = None
    if case.system is not None:
        system = _apply(catalog.system(case.system, "system"), case.system_overrides, where, "system_overrides")
    return model, accel, system



def bundled_case_files() -> list[Path]:
    """The shipped case files (``software.yaml`` beside them holds per-source facts, not cases)."""
    return sorted(p for p in BUNDLED_CASES.glob("*.yaml") if p.name != "software.yaml")


