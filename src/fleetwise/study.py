"""Studies: one question (its resolved inputs) and its answer (results), as a frozen, content-hashed value.

A ``Study`` is what every front end passes around: the CLI prints it (``--json`` writes it whole), the
HTTP service stores it, ``emit`` and ``simulate --plan`` read plans back from it, ``sweep`` writes one
per scenario. Inputs and results are plain JSON data (str, int, float, bool, None, lists, dicts with
str keys), so ``Study.from_json(s.to_json()) == s`` holds exactly and the JSON is stable to the byte.
Entry points: ``Study``, ``Study.from_json``, ``Study.load``, ``STUDY_KINDS``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from fleetwise.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

StudyKind = Literal[
    "plan_train", "explain_train", "compare_train", "match_train", "plan_train_mixed", "power_train",
    "plan_serve", "explain_serve", "compare_serve", "match_serve", "simulate",
    "validate", "place_serve", "place_train", "sweep",
]
STUDY_KINDS: tuple[str, ...] = get_args(StudyKind)
SCHEMA_VERSION = 1
MAX_STUDY_BYTES = 64 * 2**20  # a study file larger than this is refused before parsing
_ECHO_CHARS = 80


def _echo(value: object) -> str:
    """A bounded repr for error messages: never echo more than ``_ECHO_CHARS`` characters of input."""
    text = repr(value)
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 3] + "..."


def _check_json(value: object, where: str) -> None:
    """Raise ``SpecError`` unless ``value`` is plain JSON data (finite floats, str keys)."""
    stack: list[tuple[object, str]] = [(value, where)]
    while stack:
        v, at = stack.pop()
        if v is None or isinstance(v, (bool, int, str)):
            continue
        if type(v).__module__ == "numpy" and hasattr(v, "item"):
            stack.append((v.item(), at))
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                raise SpecError(f"{at}: numbers must be finite (got {v})")
            continue
        if isinstance(v, (list, tuple)):
            stack.extend((x, f"{at}[{i}]") for i, x in enumerate(v))
            continue
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    raise SpecError(f"{at}: keys must be strings (got {_echo(k)})")
                stack.append((x, f"{at}.{k}"))
            continue
        raise SpecError(f"{at}: must be JSON data (str, number, bool, null, list, object), got {type(v).__name__}")


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces: the bytes the content hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _numpy_scalar(value: object) -> object:
    """numpy scalars (np.int64, np.bool_) as Python numbers; anything else is refused by ``_check_json``."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    raise TypeError(type(value).__name__)


def _freeze(value: Any) -> Any:
    """A deep copy through JSON (tuples become lists), so a study never shares mutable state with its caller."""
    return json.loads(json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                                 default=_numpy_scalar))


@dataclass(frozen=True, slots=True, eq=False)
class Study:
    """A question and its answer.

    Args:
        kind: which question (``plan_train``, ``plan_serve``, …; see ``STUDY_KINDS``).
        inputs: the resolved inputs, as JSON data: every id, count and setting that produced the results,
            including what was defaulted (and how), and the catalog entries used.
        results: the answer, as JSON data (for searches ``results["rows"]`` lists one dict per plan).
        version: the fleetwise version that computed it.
    """

    kind: str
    inputs: Mapping[str, Any]
    results: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        if self.kind not in STUDY_KINDS:
            raise SpecError(f"study kind must be one of {', '.join(STUDY_KINDS)} (got {_echo(self.kind)})")
        for name in ("inputs", "results"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise SpecError(f"study {name} must be an object (got {type(value).__name__})")
            _check_json(dict(value), name)
            object.__setattr__(self, name, _freeze(dict(value)))
        if not self.version:
            from fleetwise.version import __version__

            object.__setattr__(self, "version", __version__)

    @property
    def id(self) -> str:
        """Content hash of the question (kind, inputs, version): the same question has the same id."""
        body = canonical_json({"kind": self.kind, "inputs": self.inputs, "version": self.version})
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @property
    def digest(self) -> str:
        """Content hash of the whole study, answer included."""
        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Study):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        rows = self.results.get("rows")
        n = f", {len(rows)} rows" if isinstance(rows, list) else ""
        what = " ".join(str(self.inputs[k]) for k in ("model", "hardware", "chips") if k in self.inputs)
        return f"Study({self.kind}, {what or '-'}{n}, id={self.id})"

    def to_dict(self) -> dict[str, Any]:
        """The whole study as JSON data (a fresh copy)."""
        return {"schema": SCHEMA_VERSION, "kind": self.kind, "id": self.id, "version": self.version,
                "inputs": _freeze(self.inputs), "results": _freeze(self.results)}

    def to_json(self, indent: int | None = 2) -> str:
        """Stable JSON: sorted keys, so the same study gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: object, where: str = "study") -> Study:
        """Rebuild a study from ``to_dict`` output; every problem names the field."""
        if not isinstance(data, dict):
            raise SpecError(f"{where}: a study must be a JSON object (got {type(data).__name__})")
        unknown = sorted(set(data) - {"schema", "kind", "id", "version", "inputs", "results"})
        if unknown:
            raise SpecError(f"{where}: unknown study field {_echo(unknown[0])} (allowed: schema, kind, id, "
                            "version, inputs, results)")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise SpecError(f"{where}: schema must be {SCHEMA_VERSION} (got {_echo(schema)})")
        for name in ("kind", "inputs"):
            if name not in data:
                raise SpecError(f"{where}: missing field {name!r}")
        version = data.get("version", "")
        if not isinstance(version, str):
            raise SpecError(f"{where}: version must be a string (got {_echo(version)})")
        study = cls(kind=cast(str, data["kind"]), inputs=data["inputs"], results=data.get("results", {}),
                    version=version)
        if "id" in data and data["id"] != study.id:
            raise SpecError(f"{where}: id {_echo(data['id'])} does not match the content (expected {study.id}); "
                            "the file was edited or corrupted")
        return study

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "study") -> Study:
        """Parse a study from JSON text."""
        if len(text) > MAX_STUDY_BYTES:
            raise SpecError(f"{where}: larger than {MAX_STUDY_BYTES // 2**20} MiB (got {len(text):,} bytes)")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise SpecError(f"{where}: not valid JSON ({_echo(str(exc))})") from None
        return cls.from_dict(data, where)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        """Read a study file (what ``--json`` writes)."""
        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_STUDY_BYTES:
                raise SpecError(f"{p}: larger than {MAX_STUDY_BYTES // 2**20} MiB (got {size:,} bytes)")
            text = p.read_bytes()
        except OSError as exc:
            raise SpecError(f"{p}: cannot read the study file ({exc.strerror or exc})") from None
        return cls.from_json(text, str(p))

    def save(self, path: str | Path) -> Path:
        """Write the study atomically (a temporary file renamed into place): never half-written."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.to_json() + "\n")
        tmp.replace(p)
        return p

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The result rows (plans) of a search-like study; empty when it has none."""
        rows = self.results.get("rows", [])
        return [dict(r) for r in rows] if isinstance(rows, list) else []

    def to_dataframe(self) -> pd.DataFrame:
        """The rows as a pandas DataFrame, nested fields flattened with dots (needs the ``notebook`` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise SpecError("to_dataframe needs pandas: pip install 'fleetwise[notebook]'") from None
        return pd.json_normalize(self.rows)
