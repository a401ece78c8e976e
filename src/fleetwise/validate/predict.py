"""Predict one case of either kind. Entry point: ``predict_case(case, catalog, eff, calib)``."""

from __future__ import annotations

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import FleetwiseError, SpecError
from fleetwise.perf.calibration import Calibration, GroupConstants
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.validate.cases import Case
from fleetwise.validate.inference_cases import predict_inference
from fleetwise.validate.specs import CasePrediction
from fleetwise.validate.training_cases import predict_training


def predict_case(case: Case, catalog: Catalog, eff: EfficiencyTable, calib: Calibration,
                 constants: GroupConstants | None = None) -> CasePrediction:
    if case.kind == "training":
        if case.training is None:
            raise SpecError(f"case {case.id}: training: required for kind 'training'")
        return predict_training(case, catalog, eff, calib, constants)
    if case.kind == "inference":
        return predict_inference(case, catalog, eff)
    raise FleetwiseError(f"case {case.id}: kind {case.kind!r} is not predicted")


