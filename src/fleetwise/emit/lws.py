"""``--target lws``: a Kubernetes LeaderWorkerSet manifest that runs a serving plan's engines as pod groups.

One LeaderWorkerSet per engine pool (co-located, or prefill and decode): ``replicas`` = engines,
``size`` = nodes per engine, accelerators requested per pod as ``nvidia.com/gpu`` or ``huawei.com/Ascend910``.
The engine inside is vLLM (multi-node engines on a Ray cluster the leader starts and the workers join),
vllm-ascend, or SGLang (each pod one node rank, the leader's address as the rendezvous). The manifest is
checked against the LeaderWorkerSet CRD's OpenAPI schema kept in ``emit/data`` (``validate_manifest``: the
schema's types, enums and required fields with jsonschema when installed, and no field the CRD lacks).
Entry points: ``emit``, ``validate_manifest``, ``crd_schema``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from fleetwise.catalog.loader import Catalog
from fleetwise.emit import sglang as sglang_mod
from fleetwise.emit import vllm as vllm_mod
from fleetwise.emit import vllm_ascend as vllm_ascend_mod
from fleetwise.emit.base import Adjustment, Command, Emission, EmitError, StudyLike
from fleetwise.emit.flags import load_flags
from fleetwise.emit.serving import ServingContext, engine_roles, serving_context
from fleetwise.errors import SpecError

TARGET = "lws"
API_VERSION = "leaderworkerset.x-k8s.io/v1"
ENGINES = ("vllm", "vllm-ascend", "sglang")
IMAGES = {"vllm": "vllm/vllm-openai:latest", "vllm-ascend": "quay.io/ascend/vllm-ascend:latest",
          "sglang": "lmsysorg/sglang:latest"}
RAY_PORT = "6379"
SGLANG_RDZV_PORT = "5000"


@lru_cache(maxsize=1)
def crd_schema() -> dict[str, Any]:
    """The LeaderWorkerSet v1 OpenAPI schema (kubernetes-sigs/lws v0.10.0 CRD, descriptions removed)."""
    text = resources.files("fleetwise.emit").joinpath("data", "lws_v0.10.0_crd_schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _unknown_fields(value: Any, schema: dict[str, Any], at: str) -> list[str]:
    """Fields of ``value`` the schema does not declare (what ``kubectl apply --validate=strict`` refuses)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        for k, v in value.items():
            if k not in props:
                out.append(f"{at}.{k}: not a field of the LeaderWorkerSet CRD")
            else:
                out += _unknown_fields(v, props[k], f"{at}.{k}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in value.items():
            out += _unknown_fields(v, schema["additionalProperties"], f"{at}.{k}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            out += _unknown_fields(v, schema["items"], f"{at}[{i}]")
    return out


def validate_manifest(doc: dict[str, Any]) -> list[str]:
    """Problems of one LeaderWorkerSet object against the CRD schema (empty when it validates)."""
    problems = []
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "LeaderWorkerSet":
        problems.append(f"apiVersion/kind must be {API_VERSION}/LeaderWorkerSet")
    name = (doc.get("metadata") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(name)) or len(str(name)) > 63:
        problems.append(f"metadata.name {name!r} is not a DNS-1035 label")
    schema = crd_schema()["openAPIV3Schema"]
    body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
    problems += _unknown_fields(body, schema, "")
    try:
        import jsonschema
    except ImportError:  # the structural check above still ran
        return problems
    validator = jsonschema.Draft7Validator(schema)
    problems += [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                 for e in validator.iter_errors(body)]
    return problems


def _engine(ctx: ServingContext, engine: str | None) -> str:
    e = engine or ("vllm-ascend" if ctx.is_ascend else "vllm")
    if e not in ENGINES:
        raise SpecError(f"--engine must be one of {', '.join(ENGINES)} (got {e!r:.40})")
    if e == "vllm" and ctx.is_ascend:
        raise SpecError(f"--engine vllm runs on GPUs; {ctx.accel.id} is an Ascend NPU: use --engine vllm-ascend")
    if e == "vllm-ascend" and not ctx.is_ascend:
        raise SpecError(f"--engine vllm-ascend runs on Ascend NPUs; {ctx.accel.id} is not one")
    return e


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the container scripts) as literal blocks."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(str, _str)


def _sh(argv: list[str]) -> str:
    return Command("", argv, "").shell(indent="    ")


def _container(ctx: ServingContext, engine: str, args: str) -> dict[str, Any]:
    resource = "huawei.com/Ascend910" if ctx.is_ascend else "nvidia.com/gpu"
    n = ctx.chips_per_pod
    return {"name": engine.replace("-", ""), "image": IMAGES[engine], "command": ["sh", "-c"], "args": [args],
            "resources": {"limits": {resource: n}, "requests": {resource: n}},
            "ports": [{"containerPort": 30000 if engine == "sglang" else 8000, "name": "http"}]}


def _group(ctx: ServingContext, engine: str, name: str, engines: int, leader: str | None,
           worker: str) -> dict[str, Any]:
    size = ctx.nodes_per_engine
    tmpl: dict[str, Any] = {"size": size, "restartPolicy": "RecreateGroupOnPodRestart",
                            "workerTemplate": {"metadata": {"labels": {"app": name}},
                                               "spec": {"containers": [_container(ctx, engine, worker)]}}}
    if leader is not None:
        tmpl["leaderTemplate"] = {"metadata": {"labels": {"app": name, "role": "leader"}},
                                  "spec": {"containers": [_container(ctx, engine, leader)]}}
    return {"apiVersion": API_VERSION, "kind": "LeaderWorkerSet",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "fleetwise"}},
            "spec": {"replicas": engines, "startupPolicy": "LeaderCreated", "leaderWorkerTemplate": tmpl}}


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None, model_path: str | None = None,
         engine: str | None = None) -> Emission:
    ctx = serving_context(study, row, TARGET, catalog, model_path)
    eng = _engine(ctx, engine)
    inner = {"vllm": vllm_mod, "vllm-ascend": vllm_ascend_mod, "sglang": sglang_mod}[eng].emit(
        study, row, catalog, model_path=model_path)
    adj: list[Adjustment] = list(inner.adjustments)
    notes = list(inner.notes)
    from fleetwise.plan import ServingPlan

    p = ServingPlan(**inner.plan)
    base = re.sub(r"[^a-z0-9-]+", "-", ctx.model.id.lower()).strip("-")[:40]
    docs: list[dict[str, Any]] = []
    commands: list[Command] = []
    multinode = ctx.nodes_per_engine > 1
    for (role, engines), cmd in zip(engine_roles(p), inner.commands, strict=True):
        name = f"{base}-{role}"
        argv = list(cmd.argv)
        if eng == "sglang":
            commands.append(Command(f"sglang:{role}", argv, cmd.program))
            text = _sh(argv).replace("$NODE_RANK", "$(LWS_WORKER_INDEX)").replace(
                "$DIST_INIT_ADDR", f"$(LWS_LEADER_ADDRESS):{SGLANG_RDZV_PORT}")
            docs.append(_group(ctx, eng, name, engines, None, text))
            continue
        commands.append(Command(f"{eng}:{role}", argv, cmd.program))
        if not multinode:
            docs.append(_group(ctx, eng, name, engines, None, _sh(argv)))
            continue
        head = ["ray", "start", "--head", "--port", RAY_PORT]
        join = ["ray", "start", "--address", f"$(LWS_LEADER_ADDRESS):{RAY_PORT}", "--block"]
        commands += [Command(f"{eng}:ray-head", head, "start"), Command(f"{eng}:ray-worker", join, "start")]
        docs.append(_group(ctx, eng, name, engines, f"{_sh(head)} && {_sh(argv)}", _sh(join)))
    problems = [f"{d['metadata']['name']}: {x}" for d in docs for x in validate_manifest(d)]
    if problems:
        raise EmitError("LeaderWorkerSet manifest does not validate against the CRD schema: " + "; ".join(problems[:5]))
    fs = load_flags(eng)
    resource = "huawei.com/Ascend910" if ctx.is_ascend else "nvidia.com/gpu"
    head = [f"fleetwise emit --target lws --engine {eng}: study {study.id} row {row} ({p.label()})",
            f"{len(docs)} LeaderWorkerSet(s); each group {ctx.nodes_per_engine} pod(s) x {ctx.chips_per_pod} "
            f"{resource}; engine flags checked against {fs.pin()}; schema kubernetes-sigs/lws v0.10.0 CRD"]
    head += [f"cannot express {a.line()}" for a in adj] + [f"note: {n}" for n in notes]
    text = "".join(f"# {h}\n" for h in head) + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=1000)
    return Emission(TARGET, f"LeaderWorkerSet v1 (lws v0.10.0) + {fs.pin()}", p.model_dump(),
                    {"lws.yaml": text}, commands, adj, notes)
