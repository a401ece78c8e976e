"""Launch files from plans: training (Megatron-LM, MindSpeed-LLM) and serving (vLLM, vllm-ascend, SGLang, and a
Kubernetes LeaderWorkerSet manifest around a serving engine).

``emit(study, target, row=0)`` reads one plan from a study (``plan_train``/``explain_train`` for training targets,
``plan_serve`` for serving targets) and returns an ``Emission``: the launch files, their command lines, and every
plan setting the framework cannot express with the nearest plan it can run and the predicted cost of the
difference. Every emitted flag and value is checked against the framework's pinned argument data
(``emit/data/*.yaml``, read from the frameworks' own parsers) before anything is returned.
Entry points: ``emit``, ``TARGETS``, ``check_emission``.
"""

from __future__ import annotations

from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Command, Emission, EmitError, StudyLike
from fleetwise.errors import SpecError

TRAINING_TARGETS = ("megatron", "mindspeed-llm")
SERVING_TARGETS = ("vllm", "vllm-ascend", "sglang", "lws")
TARGETS = TRAINING_TARGETS + SERVING_TARGETS

__all__ = ["Adjustment", "Command", "Emission", "EmitError", "TARGETS", "check_emission", "emit"]


def check_emission(e: Emission) -> list[str]:
    """Every problem of an emission's command lines against the flag data (and, for LWS, the CRD schema)."""
    from fleetwise.emit.flags import check_command, load_flags

    problems: list[str] = []
    for c in e.commands:
        key = c.role.split(":", 1)[0] if e.target == "lws" else e.target  # lws roles are "<engine>:<role>"
        problems += check_command(c.argv, load_flags(key), c.program, f"{e.target} {c.role}")
    if e.target == "lws":
        import yaml

        from fleetwise.emit.lws import validate_manifest

        for doc in yaml.safe_load_all(e.files["lws.yaml"]):
            problems += [f"lws.yaml {doc['metadata']['name']}: {x}" for x in validate_manifest(doc)]
    return problems


def emit(study: StudyLike, target: str, row: int = 0, catalog: Catalog | None = None, **options: Any) -> Emission:
    """Launch files for plan ``row`` of ``study`` on ``target`` (one of ``TARGETS``), checked against the flag data.

    Serving targets take ``model_path`` (the weights path or hub id the engine loads; default ``/models/<id>``);
    ``lws`` also takes ``engine`` (``vllm``, ``vllm-ascend`` or ``sglang``; default by accelerator vendor);
    ``mindspeed-llm`` takes ``launcher`` (``torchrun``, the PyTorch backend, or ``msrun``, the MindSpore backend).
    """
    if target not in TARGETS:
        raise SpecError(f"--target must be one of {', '.join(TARGETS)} (got {target!r:.40})")
    allowed = {"lws": {"model_path", "engine"}, "mindspeed-llm": {"launcher"}}.get(
        target, {"model_path"} if target in SERVING_TARGETS else set())
    unknown = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if unknown:
        raise SpecError(f"--{unknown[0].replace('_', '-')} does not apply to --target {target}")
    opts = {k: v for k, v in options.items() if v is not None}
    if target == "megatron":
        from fleetwise.emit import megatron as mod
    elif target == "mindspeed-llm":
        from fleetwise.emit import mindspeed_llm as mod  # type: ignore[no-redef]
    elif target == "vllm":
        from fleetwise.emit import vllm as mod  # type: ignore[no-redef]
    elif target == "vllm-ascend":
        from fleetwise.emit import vllm_ascend as mod  # type: ignore[no-redef]
    elif target == "sglang":
        from fleetwise.emit import sglang as mod  # type: ignore[no-redef]
    else:
        from fleetwise.emit import lws as mod  # type: ignore[no-redef]
    e: Emission = mod.emit(study, row, catalog, **opts)
    problems = check_emission(e)
    if problems:
        raise EmitError("emitted flags not in the framework's flag data: " + "; ".join(problems[:5]))
    return e
