"""Flags to study inputs: every flag the user gave becomes an input (the study then uses or rejects it).

``study_request(args) -> (kind, inputs)`` is the whole mapping; nothing here computes. ``--plan STUDY.json
--row N`` starts from that study's job and plan, and the flags given override it.
"""

from __future__ import annotations

import argparse
from typing import Any

from fleetwise.cli.args import positive_int
from fleetwise.errors import SpecError
from fleetwise.study import Study

# flags that choose output or the catalog, not the question
NOT_INPUTS = frozenset({"command", "workload", "json", "catalog", "plan", "row", "action", "map", "plot", "save"})
TRAIN_PLAN = ("tp", "pp", "dp", "cp", "ep", "mbs", "vpp", "recompute", "recompute_layers_frac", "zero",
              "sequence_parallel", "tp_comm_overlap", "ep_comm_overlap", "rank_order")
SERVE_PLAN = {"tp": "tp", "pp": "pp", "dp": "dp", "ep": "ep", "replicas": "replicas", "max_batch": "max_batch",
              "token_budget": "token_budget", "prefill_replicas": "prefill_replicas",
              "weights": "weight_precision", "kv": "kv_precision"}
TRAIN_JOB = ("model", "hardware", "system", "seq_len", "global_batch", "precision", "tokens", "attention_kernel",
             "lora_rank", "sites", "site_link_gbit", "site_link_rtt_ms")
TRAIN_ROWS = ("plan_train", "explain_train", "power_train", "compare_train", "match_train")
SERVE_ROWS = ("plan_serve", "explain_serve", "simulate")


def _given(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if v is not None and k not in NOT_INPUTS}


def _row(args: argparse.Namespace, kinds: tuple[str, ...]) -> tuple[Study, dict[str, Any]] | None:
    """The study file and row named by ``--plan``/``--row``, or None without ``--plan``."""
    if getattr(args, "plan", None) is None:
        if getattr(args, "row", None) is not None:
            raise SpecError("--row needs --plan STUDY.json")
        return None
    try:
        study = Study.load(args.plan)
    except SpecError as exc:
        raise SpecError(f"--plan {exc}") from None
    if study.kind not in kinds:
        raise SpecError(f"--plan {args.plan}: a {study.kind} study has no plans for this command "
                        f"(give one of: {', '.join(kinds)})")
    rows = study.rows
    n = 0 if args.row is None else args.row
    if not rows or not 0 <= n < len(rows):
        raise SpecError(f"--row must be in 0..{len(rows) - 1} for {args.plan} (got {n})" if rows
                        else f"--plan {args.plan}: the study has no rows")
    row = rows[n]
    if not isinstance(row.get("plan"), dict):
        raise SpecError(f"--plan {args.plan}: row {n} has no plan")
    return study, row


def _train(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    given = _given(args)
    plan_flags = {("micro_batch" if k == "mbs" else k): given.pop(k) for k in TRAIN_PLAN if k in given}
    inputs: dict[str, Any] = {}
    found = _row(args, TRAIN_ROWS) if kind != "plan_train" else None
    if found is not None:
        study, row = found
        inputs = {k: study.inputs[k] for k in TRAIN_JOB if study.inputs.get(k) is not None}
        for k in ("hardware", "system"):
            if row.get(k) is not None:
                inputs[k] = row[k]
        if "hardware" not in inputs and study.inputs.get("ours"):  # match_train rows name their hardware
            inputs["hardware"] = study.inputs["ours"]
        inputs["plan"] = {**row["plan"], **plan_flags}
    elif kind == "plan_train":
        if plan_flags:
            inputs["pinned"] = plan_flags
    elif kind in ("explain_train", "power_train"):
        inputs["plan"] = plan_flags  # fields not given take the plan defaults (tp=1, ...)
    inputs.update(given)
    return inputs


def _theirs(inputs: dict[str, Any], example: str) -> None:
    if "theirs" not in inputs:
        return
    hw, _, n = str(inputs["theirs"]).partition(":")
    if not n:
        raise SpecError(f"--theirs must be HW:N, e.g. {example}:1024 (got {inputs['theirs']!r})")
    try:
        inputs["their_chips"] = positive_int(n)
    except argparse.ArgumentTypeError as exc:
        raise SpecError(f"--theirs: {exc}") from None
    inputs["theirs"] = hw


def _serve(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    given = _given(args)
    plan_flags = {SERVE_PLAN[k]: given.pop(k) for k in list(SERVE_PLAN) if k in given}
    inputs: dict[str, Any] = {}
    found = _row(args, SERVE_ROWS) if kind in ("explain_serve", "simulate") else None
    if found is not None:
        study, row = found
        keep = ("model", "hardware", "system") + (("trace",) if kind == "simulate" else
                                                   ("input_tokens", "output_tokens", "trace"))
        inputs = {k: study.inputs[k] for k in keep if study.inputs.get(k) is not None}
        if study.inputs.get("trace") is not None and kind == "explain_serve":
            inputs.pop("input_tokens", None)
            inputs.pop("output_tokens", None)
        inputs["plan"] = {**row["plan"], **plan_flags}
        if "chips" in given and "replicas" not in plan_flags:
            inputs["plan"].pop("replicas", None)  # --chips re-derives the replicas
    elif kind in ("explain_serve", "simulate"):
        inputs["plan"] = plan_flags  # fields not given take the plan defaults (tp=1, one replica, ...)
    if "no_confirm" in given:
        given["confirm"] = not given.pop("no_confirm")
    if "price" in given:
        given["prices"] = given.pop("price")
    if kind == "explain_serve" and ("input_tokens" in given or "output_tokens" in given):
        inputs.pop("trace", None)
    elif "trace" in given:
        inputs.pop("input_tokens", None)
        inputs.pop("output_tokens", None)
    inputs.update(given)
    _theirs(inputs, "nvidia_h20")
    return inputs


def study_request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The study kind and inputs the command line asks for (flags not given are left out)."""
    cmd, workload = args.command, getattr(args, "workload", None)
    if cmd == "validate":
        given = _given(args)
        if "files" in given:
            given["files"] = [str(f) for f in given["files"]]
            if not given["files"]:
                given.pop("files")
        return "validate", given
    if cmd == "simulate":
        return "simulate", _serve(args, "simulate")
    if cmd == "place":
        if workload == "rtt":
            raise SpecError("place rtt is a report of the network model, not a study")
        given = _given(args)
        if given.pop("no_heuristics", False):
            given["heuristics"] = False
        return f"place_{workload}", given
    kind = f"{cmd}_{workload}"
    if workload == "serve":
        return kind, _serve(args, kind)
    if kind == "plan_train" and ":" in (getattr(args, "hardware", None) or ""):
        inputs = _train(args, kind)
        inputs["fleet"] = inputs.pop("hardware")
        return "plan_train_mixed", inputs
    inputs = _train(args, kind)
    if kind == "power_train" and "cap" in inputs:
        inputs["cap_w"] = inputs.pop("cap")
    if kind == "match_train":
        _theirs(inputs, "nvidia_h100_sxm")
    return kind, inputs
