"""Reading a study's inputs (JSON data) with one clear message per bad field.

Every study kind names the inputs it takes; an input it does not take is rejected (never dropped), so a
flag or field that would not change the answer is an error, not silence. Entry point: ``Inputs``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleetwise.errors import SpecError

_ECHO = 60


def echo(value: object) -> str:
    """A bounded repr for messages."""
    text = repr(value)
    return text if len(text) <= _ECHO else text[: _ECHO - 3] + "..."


_FLAGS = {"pinned": "plan flags --tp/--pp/...", "plan": "--plan or plan flags", "fleet": "--hardware HW:N,HW:M",
          "their_chips": "--theirs HW:N", "prices": "--price", "confirm": "--no-confirm", "cap_w": "--cap",
          "recompute_layers_frac": "--recompute-frac", "micro_batch": "--mbs", "files": "case files"}


def flag(name: str) -> str:
    """The command-line flag an input comes from (``global_batch`` -> ``--global-batch``)."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


class Inputs:
    """Typed access to a study's inputs; every read names the input and what is allowed.

    Args:
        kind: the study kind (for messages).
        data: the inputs as given.
        allowed: the inputs this kind takes; any other is rejected, with ``hints`` explaining why if given.
    """

    def __init__(self, kind: str, data: Mapping[str, Any], allowed: Iterable[str],
                 hints: Mapping[str, str] | None = None) -> None:
        if not isinstance(data, Mapping):
            raise SpecError(f"{kind}: inputs must be an object (got {type(data).__name__})")
        self.kind = kind
        self.data = {k: v for k, v in data.items() if v is not None}
        self.allowed = tuple(allowed)
        self.defaulted: set[str] = set()  # inputs not given, read with a default (echoed as "defaults")
        for k in self.data:
            if k not in self.allowed:
                why = (hints or {}).get(k)
                raise SpecError(f"{kind}: {k} ({flag(k)}) does not apply here"
                                + (f": {why}" if why else f" (allowed: {', '.join(sorted(self.allowed))})"))

    def _get(self, name: str, default: Any) -> Any:
        if name not in self.data and default is not None:
            self.defaulted.add(name)
        return self.data.get(name, default)

    def defaults(self) -> list[str]:
        """The inputs that took their default, sorted (what a study echoes as ``defaults``)."""
        return sorted(self.defaulted)

    def has(self, name: str) -> bool:
        return name in self.data

    def _where(self, name: str) -> str:
        return f"{self.kind}: {name} ({flag(name)})"

    def text(self, name: str, default: str | None = None, *, required: bool = False,
            choices: Sequence[str] | None = None) -> str | None:
        v = self._get(name, default)
        if v is None:
            if required:
                raise SpecError(f"{self._where(name)} is required")
            return None
        if not isinstance(v, str) or not v:
            raise SpecError(f"{self._where(name)} must be a non-empty string (got {echo(v)})")
        if choices is not None and v not in choices:
            raise SpecError(f"{self._where(name)} must be one of {', '.join(choices)} (got {echo(v)})")
        return v

    def req_text(self, name: str, choices: Sequence[str] | None = None) -> str:
        v = self.text(name, required=True, choices=choices)
        assert v is not None
        return v

    def whole(self, name: str, default: int | None = None, *, required: bool = False, minimum: int = 1) -> int | None:
        v = self._get(name, default)
        if v is None:
            if required:
                raise SpecError(f"{self._where(name)} is required")
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
            raise SpecError(f"{self._where(name)} must be an integer >= {minimum} (got {echo(v)})")
        return v

    def req_whole(self, name: str, minimum: int = 1) -> int:
        v = self.whole(name, required=True, minimum=minimum)
        assert v is not None
        return v

    def number(self, name: str, default: float | None = None, *, required: bool = False,
              positive: bool = True, maximum: float | None = None) -> float | None:
        v = self._get(name, default)
        if v is None:
            if required:
                raise SpecError(f"{self._where(name)} is required")
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) \
                or (positive and not v > 0) or (maximum is not None and v > maximum):
            allowed = "a number > 0" if positive else "a number"
            if maximum is not None:
                allowed += f" and <= {maximum:g}"
            raise SpecError(f"{self._where(name)} must be {allowed} (got {echo(v)})")
        return float(v)

    def switch(self, name: str, default: bool) -> bool:
        v = self._get(name, default)
        if not isinstance(v, bool):
            raise SpecError(f"{self._where(name)} must be true or false (got {echo(v)})")
        return v

    def mapping(self, name: str) -> dict[str, Any]:
        v = self.data.get(name, {})
        if not isinstance(v, Mapping):
            raise SpecError(f"{self._where(name)} must be an object (got {echo(v)})")
        return dict(v)

    def ids(self, name: str) -> list[str]:
        """A list of ids, also given as one comma-separated string."""
        v = self.data.get(name, [])
        if isinstance(v, str):
            v = [x.strip() for x in v.split(",") if x.strip()]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            raise SpecError(f"{self._where(name)} must be a list of ids or 'A,B,...' (got {echo(v)})")
        return list(v)
