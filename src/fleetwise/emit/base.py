"""What every emitter returns: launch files, the command lines in them, and what had to change to run the plan.

An ``Emission`` carries the files to write (shell scripts, manifests), every command line they contain (so tests
and ``check`` can hold them against the framework's flag data), and the ``Adjustment`` list: each plan field the
framework cannot express, the nearest value it can run, why, and the predicted cost of the difference.
Entry points: ``Emission``, ``Adjustment``, ``EmitError``, ``study_row``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetwise.errors import FleetwiseError, SpecError


class StudyLike(Protocol):
    """What emitters read from a study (``fleetwise.study.Study``; emit sits beside it in the layers, so it takes
    any object of this shape instead of importing it)."""

    @property
    def kind(self) -> str: ...

    @property
    def inputs(self) -> Mapping[str, Any]: ...

    @property
    def id(self) -> str: ...

    @property
    def rows(self) -> list[dict[str, Any]]: ...


class EmitError(FleetwiseError):
    """An emitter produced a flag or value that its framework's flag data does not declare (a fleetwise bug)."""


@dataclass(frozen=True, slots=True)
class Adjustment:
    """One plan setting the framework cannot express, and the nearest one it can run."""

    field: str
    wanted: Any
    emitted: Any
    reason: str
    cost: str | None = None  # the predicted difference, in words
    metrics: dict[str, Any] | None = None  # {metric, plan, nearest, change} when priced

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "wanted": self.wanted, "emitted": self.emitted, "reason": self.reason,
                "cost": self.cost, "metrics": self.metrics}

    def line(self) -> str:
        tail = f"; {self.cost}" if self.cost else ""
        return f"{self.field}: plan {self.wanted!r} -> emitted {self.emitted!r} ({self.reason}){tail}"


@dataclass(frozen=True)
class Command:
    """One command line of a launch file: where it runs and the argv, with the framework entry point named."""

    role: str  # "train", "serve", "prefill", "decode", "ray-head", "ray-worker"
    argv: list[str]
    program: str  # the entry-point word that separates launcher flags from framework flags

    def shell(self, indent: str = "  ") -> str:
        """The argv as a shell line, one ``--flag value`` per continuation line; ``$VARS`` stay expandable."""
        parts: list[str] = []
        for tok in self.argv:
            q = tok if tok.startswith("$") or tok.startswith('"$') else shlex.quote(tok)
            if tok.startswith("--") and parts:
                parts.append(f" \\\n{indent}{q}")
            else:
                parts.append(("" if not parts else " ") + q)
        return "".join(parts)


@dataclass(frozen=True)
class Emission:
    """The launch files for one plan on one target."""

    target: str
    framework: str  # the pinned framework version the flags were checked against
    plan: dict[str, Any]  # the plan as emitted (after adjustments)
    files: dict[str, str]
    commands: list[Command]
    adjustments: list[Adjustment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "framework": self.framework, "plan": self.plan,
                "adjustments": [a.to_dict() for a in self.adjustments], "notes": list(self.notes),
                "commands": [{"role": c.role, "argv": c.argv} for c in self.commands],
                "files": sorted(self.files)}

    def write(self, out: str | Path) -> list[Path]:
        """Write every file under ``out`` (created if missing); scripts are made executable."""
        d = Path(out)
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError(f"--out {d}: cannot create the folder ({exc.strerror or exc})") from None
        written = []
        for name, text in self.files.items():
            p = d / name
            p.write_text(text)
            if name.endswith(".sh"):
                p.chmod(0o755)
            written.append(p)
        return written

    def summary(self) -> str:
        lines = [f"# {self.target}: checked against {self.framework}"]
        lines += [f"# cannot express {a.line()}" for a in self.adjustments]
        lines += [f"# note: {n}" for n in self.notes]
        return "\n".join(lines)


def study_row(study: StudyLike, row: int, kinds: tuple[str, ...], target: str) -> dict[str, Any]:
    """Row ``row`` of a search study of one of ``kinds``, with a clear error naming the study and the choices."""
    if study.kind not in kinds:
        raise SpecError(f"--target {target} needs a {' or '.join(kinds)} study (got a {study.kind} study, "
                        f"id {study.id})")
    rows = study.rows
    if not rows:
        raise SpecError(f"study {study.id} has no plans (results.rows is empty)")
    if not 0 <= row < len(rows):
        raise SpecError(f"--row must be in 0..{len(rows) - 1} for study {study.id} (got {row})")
    r = rows[row]
    if not isinstance(r.get("plan"), dict):
        raise SpecError(f"study {study.id} row {row}: has no 'plan' object")
    return r


def script(header: list[str], commands: list[Command], env: dict[str, str] | None = None) -> str:
    """A bash launch script: header comments, ``export`` lines, then the commands."""
    lines = ["#!/usr/bin/env bash", *[f"# {h}" if h else "#" for h in header], "set -euo pipefail"]
    for k, v in (env or {}).items():
        lines.append(f'export {k}="{v}"')
    for c in commands:
        lines += ["", c.shell()]
    return "\n".join(lines) + "\n"
