"""Load the bundled catalog plus user catalog folders into a ``Catalog`` of frozen specs.

Entry points: ``load_catalog(extra_dirs)``, ``Catalog.model(id)`` etc., ``load_yaml_file``.
Layers apply in order: bundled data, then each user folder (later folders override earlier ones),
then ``$FLEETWISE_CATALOG`` (``os.pathsep``-separated folders) when no folders are passed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from fleetwise.catalog.types import SPEC_TYPES, Accelerator, Fabric, ModelArch, Spec, System
from fleetwise.errors import SpecError, UnknownIdError, cut, shown

BUNDLED_DIR = Path(__file__).parent / "data"
ENV_VAR = "FLEETWISE_CATALOG"
S = TypeVar("S", bound=Spec)
M = TypeVar("M", bound=BaseModel)
MAX_YAML_BYTES = 20_000_000  # the largest bundled file is ~100 KB; a bigger "spec" is a wrong path
MAX_YAML_NODES = 1_000_000  # values a YAML document may expand to through aliases (bundled files: < 40,000)
MAX_ERRORS_SHOWN = 3


def is_file(path: str | Path) -> bool:
    """``Path(path).is_file()``, False (not an error) for names the OS refuses (too long, NUL bytes)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: str | Path) -> bool:
    """``Path(path).is_dir()``, False for names the OS refuses."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


# libyaml's loader parses the catalog ~8x faster than the pure-Python one and gives the same values


def load_yaml_file(path: Path) -> Any:
    """Parse one YAML file; a syntax error names the file and line.

    Anchors and aliases (``&name`` / ``*name``) are refused: specs are plain data, and nested aliases let a
    few hundred bytes expand into gigabytes (the "billion laughs" file) once anything walks the result.
    """
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise SpecError(f"{path}: file of {size:,} bytes is too large for a spec (at most {MAX_YAML_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{cut(str(path), 200)}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # a NUL byte in the name
        raise SpecError(f"{cut(str(path), 200)}: cannot read file ({cut(str(exc), 80)})") from None
    return parse_yaml_text(text, str(path))


def parse_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text; errors name ``where`` and the line. Anchors and aliases are standard YAML and are read
    (each alias becomes its own copy of the anchored value), unless the aliases would expand the document past
    ``MAX_YAML_NODES`` values (nested aliases grow exponentially: a "billion laughs")."""
    try:
        if "&" in text or "*" in text:  # only then can an anchor or alias be present: check the events
            if _bound_aliases(text, where):
                return _unshared(yaml.load(text, Loader=_LOADER))  # noqa: S506 - a safe loader
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}:{line}: malformed YAML: {cut(str(problem), 120)}") from None
    except RecursionError:
        raise SpecError(f"{where}: YAML nested too deeply") from None


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _bound_aliases(text: str, where: str) -> bool:
    """Whether ``text`` uses aliases; raise when they would expand it past ``MAX_YAML_NODES`` values.

    Counts, from the event stream alone, the values each anchored node stands for (an alias counts its
    anchor's whole value again), so a deep nest of aliases is refused after one pass, before anything is
    built."""
    sizes: dict[str, int] = {}
    open_nodes: list[list[Any]] = []  # [anchor, values so far] of each open sequence or mapping
    aliased = False
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, n = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, n = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            aliased = True
            anchor, n = None, sizes.get(str(event.anchor), 1)  # an undefined alias: the composer names it
        else:
            continue
        if anchor is not None:
            sizes[str(anchor)] = n
        if open_nodes:
            open_nodes[-1][1] += n
            n = open_nodes[-1][1]
        if n > MAX_YAML_NODES:
            mark = event.start_mark
            line = f" line {mark.line + 1}:" if mark is not None else ""
            raise SpecError(f"{where}:{line} YAML aliases expand to more than {MAX_YAML_NODES:,} values; "
                            f"write the values out")
    return aliased


def _unshared(value: Any) -> Any:
    """``value`` with every alias made its own copy (bounded by ``_bound_aliases``), so no two fields share a
    mapping or list that later code could change in one place."""
    if isinstance(value, dict):
        return {k: _unshared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshared(v) for v in value]
    return value


# user catalog folders whose data files (efficiency.yaml, calibration.yaml, serving.yaml, power.yaml, sites.yaml,
# software.yaml, families.yaml) are layered over the bundled ones: set by ``load_catalog``, else $FLEETWISE_CATALOG
_DATA_LAYERS: list[Path] = []
_LAYERS_SET = False


def data_layers() -> list[Path]:
    """The user catalog folders layered over the bundled data files (the last ``load_catalog``'s, else the
    environment's)."""
    if _LAYERS_SET:
        return list(_DATA_LAYERS)
    return [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]


def _layer(base: Any, top: Any, where: str) -> Any:
    """``top`` over ``base``: mappings merge key by key (recursively), anything else is replaced."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for k, v in top.items():
            out[k] = _layer(base.get(k), v, f"{where}.{k}")
        return out
    if base is not None and isinstance(base, dict) != isinstance(top, dict):
        raise SpecError(f"{where}: a user data file must give a mapping where the bundled file has one "
                        f"(got {type(top).__name__})")
    return top


def load_data_file(path: Path) -> Any:
    """A bundled data file with the same-named file of each user catalog folder layered over it, in order
    (mappings merged key by key: a user file adds or overrides entries, e.g. one chip's efficiency, one site)."""
    data = load_yaml_file(path)
    for folder in data_layers():
        user = folder / path.name
        if user.is_file() and user.resolve() != path.resolve():
            data = _layer(data, load_yaml_file(user), str(user))
    return data


def format_validation_error(where: str, exc: ValidationError) -> str:
    """One line per problem (at most three): ``where: field: message (got value)``, values cut short."""
    lines = []
    errors = exc.errors()
    for err in errors[:MAX_ERRORS_SHOWN]:
        field = ".".join(shown(p, 40) if not isinstance(p, str) else p[:40] for p in err["loc"]) or "(entry)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not allowed here)"
        given = err.get("input")
        got = "" if err["type"] in ("missing",) or isinstance(given, dict) else f" (got {shown(given)})"
        lines.append(f"{where}: {field}: {cut(str(msg), 160)}{got}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"{where}: ... and {len(errors) - MAX_ERRORS_SHOWN} more problems")
    return "\n".join(lines)


def validated(model: type[M], where: str, data: Mapping[str, Any]) -> M:
    """``model(**data)`` with a ``SpecError`` naming ``where`` and the field instead of a ``ValidationError``."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None


def parse_spec(kind: str, data: Any, where: str) -> Spec:
    """Validate one mapping as a spec of ``kind``; errors name ``where`` and the field."""
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return SPEC_TYPES[kind].model_validate(dict(data))
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None


@dataclass(frozen=True, slots=True)
class Catalog:
    """All specs by id, after every layer has been applied."""

    accelerators: Mapping[str, Accelerator]
    systems: Mapping[str, System]
    fabrics: Mapping[str, Fabric]
    models: Mapping[str, ModelArch]
    origin: Mapping[str, str]  # "kind/id" -> file it came from

    def accelerator(self, id_: str, field: str | None = None) -> Accelerator:
        return _lookup(self.accelerators, "accelerator", id_, field)

    def system(self, id_: str, field: str | None = None) -> System:
        return _lookup(self.systems, "system", id_, field)

    def fabric(self, id_: str, field: str | None = None) -> Fabric:
        return _lookup(self.fabrics, "fabric", id_, field)

    def model(self, id_: str, field: str | None = None) -> ModelArch:
        return _lookup(self.models, "model", id_, field)

    def default_system(self, accelerator_id: str) -> System | None:
        """The first catalog system built from this accelerator, if any."""
        for sys_ in self.systems.values():
            if sys_.accelerator_id == accelerator_id:
                return sys_
        return None

    def kind(self, kind: str) -> Mapping[str, Spec]:
        return {"accelerators": self.accelerators, "systems": self.systems,
                "fabrics": self.fabrics, "models": self.models}[kind]


@functools.cache
def not_modelled() -> dict[str, dict[str, str]]:
    """Reference entries the bundled catalog leaves out, with the reason, by catalog folder
    (``data/not_modelled.yaml``, written by scripts/build_catalog.py)."""
    path = BUNDLED_DIR / "not_modelled.yaml"
    if not path.is_file():
        return {}
    data = load_yaml_file(path) or {}
    return {str(k): {str(i): str(r) for i, r in v.items()} for k, v in data.items() if isinstance(v, dict)}


def left_out(id_: object, kind: str | None = None) -> tuple[str, str] | None:
    """(kind, reason) when ``id_`` is a reference entry the bundled catalog leaves out on purpose; ``kind``
    ("model", "accelerator", ...) limits the search to that catalog folder."""
    for folder, ids in not_modelled().items():
        if (kind is None or folder == f"{kind}s") and isinstance(id_, str) and id_ in ids:
            return folder.removesuffix("s"), ids[id_]
    return None


def _lookup(table: Mapping[str, S], kind: str, id_: str, field: str | None) -> S:
    try:
        return table[id_]
    except KeyError:
        hit = left_out(id_, kind)
        raise UnknownIdError(kind, id_, sorted(table), field, hit[1] if hit else None) from None


def _iter_entry_files(folder: Path, kind: str) -> Iterable[Path]:
    sub = folder / kind
    if is_dir(sub):
        yield from sorted(sub.glob("*.yaml"))
        yield from sorted(sub.glob("*.yml"))


def _read_dir(folder: Path, tables: dict[str, dict[str, Any]], origin: dict[str, str]) -> None:
    if not is_dir(folder):
        raise SpecError(f"catalog folder {cut(str(folder), 200)} does not exist (from --catalog or ${ENV_VAR})")
    for kind in SPEC_TYPES:
        for path in _iter_entry_files(folder, kind):
            data = load_yaml_file(path)
            entries = data if isinstance(data, list) else [data]
            for i, entry in enumerate(entries):
                where = f"{path}" if len(entries) == 1 else f"{path}[{i}]"
                spec = parse_spec(kind, entry, where)
                tables[kind][spec.id] = spec  # type: ignore[attr-defined]
                origin[f"{kind}/{spec.id}"] = str(path)  # type: ignore[attr-defined]


def _check_references(tables: dict[str, dict[str, Any]], origin: dict[str, str]) -> None:
    for sys_ in tables["systems"].values():
        where = origin[f"systems/{sys_.id}"]
        if sys_.accelerator_id not in tables["accelerators"]:
            known = sorted(tables["accelerators"])
            unknown = UnknownIdError("accelerator", sys_.accelerator_id, known, "accelerator_id")
            raise SpecError(f"{where}: {unknown}")
        fabric_refs = (
            ("scaleup.fabric_id", sys_.scaleup.fabric_id),
            ("scaleout_fabric_id", sys_.scaleout_fabric_id),
        )
        for field, fid in fabric_refs:
            if fid is not None and fid not in tables["fabrics"]:
                raise SpecError(f"{where}: {UnknownIdError('fabric', fid, sorted(tables['fabrics']), field)}")


def load_catalog(extra_dirs: Iterable[str | Path] | None = None) -> Catalog:
    """Load bundled specs, then user folders (each with accelerators/ systems/ fabrics/ models/, and optionally
    data files layered over the bundled ones: efficiency.yaml, calibration.yaml, serving.yaml, power.yaml,
    sites.yaml, software.yaml, families.yaml; see ``load_data_file``).

    Args:
        extra_dirs: user catalog folders; ``None`` reads ``$FLEETWISE_CATALOG``.

    Returns:
        The merged ``Catalog``.
    """
    if extra_dirs is None:
        env = os.environ.get(ENV_VAR, "")
        extra_dirs = [p for p in env.split(os.pathsep) if p]
    global _LAYERS_SET
    _DATA_LAYERS[:] = [Path(d) for d in extra_dirs]
    _LAYERS_SET = True
    tables: dict[str, dict[str, Any]] = {k: {} for k in SPEC_TYPES}
    origin: dict[str, str] = {}
    for folder in [BUNDLED_DIR, *_DATA_LAYERS]:
        _read_dir(Path(folder), tables, origin)
    _check_references(tables, origin)
    return Catalog(
        accelerators=tables["accelerators"],
        systems=tables["systems"],
        fabrics=tables["fabrics"],
        models=tables["models"],
        origin=origin,
    )
