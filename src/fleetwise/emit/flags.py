"""The real frameworks' argument names and accepted values, as version-pinned data, and a checker for command lines.

Each file in ``emit/data/`` was read from one framework's own argument parser at a pinned commit (the file says
which repository, commit and source file each flag comes from). ``check_command`` parses an emitted command line
and reports every flag the framework does not declare, every value outside the declared choices and every
JSON key of a JSON-valued flag the framework does not read. Emitters run it on their own output before they
return, so an emitted launch file never carries a flag the data does not vouch for.
Entry points: ``FlagSet``, ``load_flags``, ``check_command``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from fleetwise.errors import SpecError

DATA_FILES = {
    "megatron": "megatron_lm_core_v0.12.1.yaml",
    "mindspeed-llm": "mindspeed_llm_c77308a.yaml",
    "vllm": "vllm_arg_utils_99d7eb5.yaml",
    "vllm-ascend": "vllm_ascend_182b75e.yaml",
    "sglang": "sglang_server_args_001067f.yaml",
}


@dataclass(frozen=True)
class FlagSet:
    """One framework version's flags: ``flags[--name] = {source, choices?, takes_value?, json_keys?}``."""

    framework: str
    version: str
    commit: str
    file: str
    flags: dict[str, dict[str, Any]]
    launcher_flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_launchers: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # msrun for MindSpore
    helper_commands: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pin(self) -> str:
        return f"{self.framework} {self.version} (commit {self.commit[:12]}, data {self.file})"


def _read(name: str) -> dict[str, Any]:
    text = resources.files("fleetwise.emit").joinpath("data", name).read_text()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML has it: 10x faster
    data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    if not isinstance(data, dict):
        raise SpecError(f"emit/data/{name}: must be a mapping")
    return data


@cache
def load_flags(target: str) -> FlagSet:
    """The flag data of ``target`` (a key of ``DATA_FILES``); files that ``extends`` another inherit its flags."""
    if target not in DATA_FILES:
        raise SpecError(f"no flag data for target {target!r} (known: {', '.join(DATA_FILES)})")
    name = DATA_FILES[target]
    data = _read(name)
    flags: dict[str, dict[str, Any]] = {}
    helpers: dict[str, dict[str, Any]] = {}
    if "extends" in data:
        base = _read(str(data["extends"]))
        flags.update(base.get("flags") or {})
        helpers.update(base.get("helper_commands") or {})
    flags.update(data.get("flags") or {})
    flags.update(data.get("overrides") or {})
    helpers.update(data.get("helper_commands") or {})
    return FlagSet(str(data["framework"]), str(data["version"]), str(data["commit"]), name, flags,
                   dict(data.get("launcher_flags") or {}), dict(data.get("other_launchers") or {}), helpers)


def _check_value(flag: str, fact: dict[str, Any], value: str, where: str) -> list[str]:
    problems = []
    choices = fact.get("choices")
    if fact.get("json"):
        try:
            obj = json.loads(value)
        except ValueError:
            return [f"{where}: {flag} takes JSON (got {value[:60]!r})"]
        keys = fact.get("json_keys")
        if keys is not None:
            if not isinstance(obj, dict):
                return [f"{where}: {flag} must be a JSON object"]
            for k, v in obj.items():
                if k not in keys:
                    problems.append(f"{where}: {flag} key {k!r} is not read by the framework (known: "
                                    f"{', '.join(sorted(keys))})")
                elif "choices" in keys[k] and v not in keys[k]["choices"]:
                    problems.append(f"{where}: {flag} {k}={v!r} not in {keys[k]['choices']}")
    elif choices is not None and value not in [str(c) for c in choices]:
        problems.append(f"{where}: {flag} {value!r} is not an accepted value ({', '.join(map(str, choices))})")
    if "range" in fact:
        lo, hi = fact["range"]
        try:
            x = float(value)
        except ValueError:
            return [*problems, f"{where}: {flag} takes a number (got {value!r})"]
        if not lo < x <= hi:
            problems.append(f"{where}: {flag} {x} outside ({lo}, {hi}]")
    return problems


def _check_args(args: list[str], table: dict[str, dict[str, Any]], where: str) -> list[str]:
    problems: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--"):
            problems.append(f"{where}: stray argument {tok!r} (every emitted value follows its flag)")
            i += 1
            continue
        flag, eq, inline = tok.partition("=")
        fact = table.get(flag)
        if fact is None:
            problems.append(f"{where}: {flag} is not a flag of this framework version")
            i += 1
            continue
        if fact.get("takes_value", True) is False:
            if eq:
                problems.append(f"{where}: {flag} takes no value")
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            value, i = args[i + 1], i + 2
        else:
            problems.append(f"{where}: {flag} needs a value")
            i += 1
            continue
        problems += _check_value(flag, fact, value, where)
    return problems


def check_command(argv: list[str], fs: FlagSet, program: str, where: str = "command") -> list[str]:
    """Problems with one emitted command line ``argv`` (empty when every flag and value is in the data).

    ``program`` is the framework's entry point as emitted (``pretrain_gpt.py``, ``serve``, ``sglang.launch_server``):
    arguments before it are checked against the launcher's flags (torchrun), arguments after it against the
    framework's. A command whose first words name a helper command of the data (``ray start``) is checked
    against that helper's flags.
    """
    for helper, spec in fs.helper_commands.items():
        words = helper.split()
        if argv[: len(words)] == words:
            return _check_args(argv[len(words):], dict(spec.get("flags") or {}), f"{where} ({helper})")
    if program not in argv:
        return [f"{where}: the entry point {program!r} is missing"]
    k = argv.index(program)
    table = fs.other_launchers.get(argv[0], fs.launcher_flags)  # torchrun, or msrun for MindSpore
    launcher = argv[1:k] if table else []
    problems = _check_args(launcher, table, f"{where} ({argv[0]})") if launcher else []
    rest = argv[k + 1:]
    if rest and not rest[0].startswith("--"):
        rest = rest[1:]  # the positional model of ``vllm serve MODEL``
    return problems + _check_args(rest, fs.flags, where)


def split_script(text: str) -> list[list[str]]:
    """The command lines of an emitted shell script (continuation lines joined; comments and exports skipped)."""
    joined = text.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("export ") or s.startswith("set ") or s == "fi" \
                or s.startswith("if ") or s == "else":
            continue
        out.append(shlex.split(s))
    return out
