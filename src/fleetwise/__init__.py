"""fleetwise: plan and predict training and serving of AI models on the chips you have, with evidence."""

from fleetwise.api import (
    compare_mixed_training,
    compare_training,
    explain_training,
    match_training,
    plan_serving,
    plan_training,
    run_study,
    training_setup,
)
from fleetwise.catalog import Catalog, load_catalog
from fleetwise.errors import FleetwiseError, InfeasibleError, SpecError, UnknownIdError
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.search.evaluate import PlanResult, TrainingSearch
from fleetwise.study import Study
from fleetwise.validate.runner import Report, validate_files
from fleetwise.version import __version__ as __version__

__all__ = [
    "Catalog",
    "FleetwiseError",
    "InfeasibleError",
    "PlanResult",
    "Report",
    "SpecError",
    "Study",
    "TrainingJob",
    "TrainingPlan",
    "TrainingSearch",
    "UnknownIdError",
    "compare_mixed_training",
    "compare_training",
    "explain_training",
    "load_catalog",
    "match_training",
    "plan_serving",
    "plan_training",
    "run_study",
    "training_setup",
    "validate_files",
]
