import fleetwise


def test_public_api_is_pinned() -> None:
    assert sorted(fleetwise.__all__) == [
        "Catalog", "FleetwiseError", "InfeasibleError", "PlanResult", "Report", "SpecError", "Study", "TrainingJob",
        "TrainingPlan", "TrainingSearch", "UnknownIdError", "compare_mixed_training", "compare_training",
        "explain_training", "load_catalog", "match_training", "plan_serving", "plan_training", "run_study",
        "training_setup",
        "validate_files",
    ]
