"""Sweep grids: the scenarios of ``fleetwise sweep GRID.yaml``, validated in full before any work starts.

A grid is either a Cartesian product of axes — ``models`` x (``hardware`` and/or ``systems``) x ``chips`` x
``workloads`` x ``objectives`` — or an explicit ``scenarios`` list. ``kind`` says what each scenario asks:
``train`` (the best training plan) or ``serve`` (the cheapest serving deployment on that many chips).
``chips`` is a list or a range ``{start, stop, step}`` (inclusive, counted without being materialised).
Every id is resolved against the catalog, every axis must be non-empty, and a grid of more than
``MAX_WITHOUT_YES`` scenarios needs ``yes=True``: each problem is one ``SpecError`` naming the file and field.
Entry points: ``Grid``, ``load_grid``, ``parse_grid``, ``scenario_id``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import Catalog, load_catalog, load_yaml_file
from fleetwise.errors import SpecError, UnknownIdError
from fleetwise.study import canonical_json

MAX_WITHOUT_YES = 100_000
KINDS = ("train", "serve")
OBJECTIVES = {"train": ("time", "energy", "cost", "carbon"), "serve": ("cost", "time", "energy")}
TRAIN_WORKLOAD_KEYS = {"name", "seq_len", "global_batch", "precision", "tokens", "attention_kernel", "lora_rank"}
SERVE_WORKLOAD_KEYS = {"name", "input_tokens", "output_tokens", "ttft_ms", "tpot_ms", "percentile"}
TOP_KEYS = {"kind", "models", "hardware", "systems", "chips", "workloads", "objectives", "scenarios", "top",
            "pinned", "name"}
SCENARIO_KEYS = {"model", "hardware", "system", "chips", "workload", "objective"}


def scenario_id(scenario: Mapping[str, Any], version: str) -> str:
    """Content hash of one scenario (its resolved inputs and the fleetwise version): the resume key."""
    body = canonical_json({"scenario": dict(scenario), "version": version})
    return hashlib.sha256(body.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Axis:
    name: str
    values: Sequence[Any]  # a list or a range

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Grid:
    """A validated grid. ``len(grid)`` scenarios; ``grid.scenarios()`` yields them in a fixed order."""

    where: str
    kind: str
    axes: tuple[_Axis, ...] | None  # model, target (hardware/system), chips, workload, objective
    rows: tuple[dict[str, Any], ...] | None
    workloads: dict[str, dict[str, Any]]
    top: int
    pinned: dict[str, Any]

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        n = 1
        for a in self.axes or ():
            n *= len(a)
        return n

    def shape(self) -> str:
        if self.rows is not None:
            return f"{len(self.rows):,} listed scenarios"
        return " x ".join(f"{a.name} {len(a):,}" for a in self.axes or ())

    def scenarios(self) -> Iterator[dict[str, Any]]:
        """Each scenario as JSON data: kind, model, hardware, system, chips, workload (name and settings), objective."""
        if self.rows is not None:
            yield from (dict(r) for r in self.rows)
            return
        for model, (hw, sys_), chips, wl, obj in itertools.product(*(a.values for a in self.axes or ())):
            yield self._scenario(model, hw, sys_, int(chips), wl, obj)

    def _scenario(self, model: str, hw: str, sys_: str | None, chips: int, wl: str, obj: str) -> dict[str, Any]:
        return {"kind": self.kind, "model": model, "hardware": hw, "system": sys_, "chips": chips,
                "workload": {"name": wl, **self.workloads[wl]}, "objective": obj, "top": self.top,
                "pinned": self.pinned}


def _list(data: Mapping[str, Any], key: str, where: str, kind: type = str) -> list[Any]:
    v = data.get(key)
    if not isinstance(v, list):
        raise SpecError(f"{where}: {key} must be a list (got {type(v).__name__})")
    if not v:
        raise SpecError(f"{where}: {key} is empty: every axis needs at least one value")
    for i, x in enumerate(v):
        if not isinstance(x, kind) or isinstance(x, bool):
            raise SpecError(f"{where}: {key}[{i}] must be a {kind.__name__} (got {x!r:.40})")
    if len(set(map(str, v))) != len(v):
        raise SpecError(f"{where}: {key} lists a value twice")
    return v


def _chips(v: Any, where: str) -> Sequence[int]:
    if isinstance(v, dict):
        unknown = sorted(set(v) - {"start", "stop", "step"})
        if unknown:
            raise SpecError(f"{where}: chips.{unknown[0]} is not a range field (allowed: start, stop, step)")
        try:
            start, stop, step = int(v["start"]), int(v["stop"]), int(v.get("step", 1))
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"{where}: chips range needs integer start and stop (and optional step)") from None
        if start < 1 or step < 1:
            raise SpecError(f"{where}: chips range needs start >= 1 and step >= 1 (got {start}, {step})")
        r = range(start, stop + 1, step)
        if not r:
            raise SpecError(f"{where}: chips range {start}..{stop} is empty")
        return r
    vals = _list({"chips": v}, "chips", where, int)
    bad = [x for x in vals if x < 1]
    if bad:
        raise SpecError(f"{where}: chips must be positive integers (got {bad[0]})")
    return vals


def _workloads(data: Mapping[str, Any], kind: str, where: str) -> dict[str, dict[str, Any]]:
    raw = data.get("workloads", [{"name": "default"}] if kind == "train" else None)
    if not isinstance(raw, list):
        raise SpecError(f"{where}: workloads must be a list of settings (got {type(raw).__name__})")
    if not raw:
        raise SpecError(f"{where}: workloads is empty: every axis needs at least one value")
    allowed = TRAIN_WORKLOAD_KEYS if kind == "train" else SERVE_WORKLOAD_KEYS
    out: dict[str, dict[str, Any]] = {}
    for i, w in enumerate(raw):
        if not isinstance(w, dict):
            raise SpecError(f"{where}: workloads[{i}] must be a mapping")
        unknown = sorted(set(w) - allowed)
        if unknown:
            raise SpecError(f"{where}: workloads[{i}].{unknown[0]} is not a {kind} workload setting "
                            f"(allowed: {', '.join(sorted(allowed))})")
        name = str(w.get("name") or f"w{i}")
        if name in out:
            raise SpecError(f"{where}: workloads[{i}]: name {name!r} is used twice")
        settings = {k: v for k, v in w.items() if k != "name"}
        for k, v in settings.items():
            if k not in ("precision", "attention_kernel") and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                                               or v <= 0):
                raise SpecError(f"{where}: workloads[{i}].{k} must be a positive number (got {v!r:.40})")
            if k in ("lora_rank", "seq_len", "global_batch") and not isinstance(v, int):
                raise SpecError(f"{where}: workloads[{i}].{k} must be a whole number (got {v!r:.40})")
        if kind == "serve":
            missing = sorted({"input_tokens", "output_tokens", "ttft_ms", "tpot_ms"} - set(settings))
            if missing:
                raise SpecError(f"{where}: workloads[{i}] ({name}) needs {', '.join(missing)} for serve grids")
        out[name] = settings
    return out


def _check_ids(cat: Catalog, where: str, models: list[str], hardware: list[str], systems: list[str]) -> None:
    for i, m in enumerate(models):
        try:
            cat.model(m, f"models[{i}]")
        except UnknownIdError as exc:
            raise SpecError(f"{where}: {exc}") from None
    for i, h in enumerate(hardware):
        try:
            cat.accelerator(h, f"hardware[{i}]")
        except UnknownIdError as exc:
            raise SpecError(f"{where}: {exc}") from None
    for i, s in enumerate(systems):
        try:
            cat.system(s, f"systems[{i}]")
        except UnknownIdError as exc:
            raise SpecError(f"{where}: {exc}") from None


def parse_grid(data: object, where: str = "grid", catalog: Catalog | None = None, yes: bool = False) -> Grid:
    """Validate grid data (the parsed YAML) completely; raises one ``SpecError`` for the first problem."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a grid must be a mapping (got {type(data).__name__})")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(TOP_KEYS))})")
    kind = data.get("kind", "train")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind must be one of {', '.join(KINDS)} (got {kind!r:.40})")
    top = data.get("top", 1)
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 100:
        raise SpecError(f"{where}: top must be an integer in 1..100 (got {top!r:.40})")
    pinned = data.get("pinned") or {}
    if not isinstance(pinned, dict) or (pinned and kind != "train"):
        raise SpecError(f"{where}: pinned must be a mapping of training plan fields (train grids only)")
    cat = catalog or load_catalog()
    workloads = _workloads(data, str(kind), where)
    if "scenarios" in data:
        clash = sorted({"models", "hardware", "systems", "chips", "objectives"} & set(data))
        if clash:
            raise SpecError(f"{where}: give either scenarios or the axes, not both (found {clash[0]!r})")
        rows = _listed(data["scenarios"], str(kind), workloads, top, pinned, where, cat)
        grid = Grid(where, str(kind), None, tuple(rows), workloads, top, pinned)
    else:
        models = _list(data, "models", where)
        hardware = _list(data, "hardware", where) if "hardware" in data else []
        systems = _list(data, "systems", where) if "systems" in data else []
        if not hardware and not systems:
            raise SpecError(f"{where}: give hardware (accelerator ids) or systems (system ids)")
        _check_ids(cat, where, models, hardware, systems)
        targets = [(h, None) for h in hardware] + [(cat.system(s).accelerator_id, s) for s in systems]
        chips = _chips(data.get("chips"), where) if "chips" in data else None
        if chips is None:
            raise SpecError(f"{where}: chips is required (a list, or a range {{start, stop, step}})")
        objectives = _list(data, "objectives", where) if "objectives" in data else [OBJECTIVES[str(kind)][0]]
        for i, o in enumerate(objectives):
            if o not in OBJECTIVES[str(kind)]:
                raise SpecError(f"{where}: objectives[{i}] must be one of {', '.join(OBJECTIVES[str(kind)])} "
                                f"for {kind} grids (got {o!r:.40})")
        axes = (_Axis("models", models), _Axis("hardware/systems", targets), _Axis("chips", chips),
                _Axis("workloads", list(workloads)), _Axis("objectives", objectives))
        grid = Grid(where, str(kind), axes, None, workloads, top, pinned)
    if len(grid) > MAX_WITHOUT_YES and not yes:
        raise SpecError(f"{where}: the grid has {len(grid):,} scenarios ({grid.shape()}), more than "
                        f"{MAX_WITHOUT_YES:,}; narrow an axis or pass --yes to run them all")
    return grid


def _listed(raw: object, kind: str, workloads: dict[str, dict[str, Any]], top: int, pinned: dict[str, Any],
            where: str, cat: Catalog) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"{where}: scenarios must be a non-empty list")
    out = []
    for i, s in enumerate(raw):
        at = f"{where}: scenarios[{i}]"
        if not isinstance(s, dict):
            raise SpecError(f"{at} must be a mapping")
        unknown = sorted(set(s) - SCENARIO_KEYS)
        if unknown:
            raise SpecError(f"{at}.{unknown[0]} is not a scenario field (allowed: {', '.join(sorted(SCENARIO_KEYS))})")
        if not isinstance(s.get("model"), str) or not isinstance(s.get("chips"), int) or s["chips"] < 1:
            raise SpecError(f"{at} needs model (an id) and chips (a positive integer)")
        sys_ = s.get("system")
        hw = s.get("hardware")
        _check_ids(cat, at, [s["model"]], [hw] if hw else [], [sys_] if sys_ else [])
        if not hw and not sys_:
            raise SpecError(f"{at} needs hardware or system")
        hw = hw or cat.system(str(sys_)).accelerator_id
        wl = s.get("workload", next(iter(workloads)))
        if wl not in workloads:
            raise SpecError(f"{at}.workload {wl!r:.40} is not a workload name (known: {', '.join(workloads)})")
        obj = s.get("objective", OBJECTIVES[kind][0])
        if obj not in OBJECTIVES[kind]:
            raise SpecError(f"{at}.objective must be one of {', '.join(OBJECTIVES[kind])} (got {obj!r:.40})")
        out.append({"kind": kind, "model": s["model"], "hardware": hw, "system": sys_, "chips": s["chips"],
                    "workload": {"name": wl, **workloads[wl]}, "objective": obj, "top": top, "pinned": pinned})
    return out


def load_grid(path: str | Path, catalog: Catalog | None = None, yes: bool = False) -> Grid:
    """Read and validate a grid file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such grid file")
    return parse_grid(load_yaml_file(p), str(p), catalog, yes)
