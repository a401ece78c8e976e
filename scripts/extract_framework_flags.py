"""Maintainer tool: list the command-line flags a framework's argument parser declares, as YAML facts.

Reads Python sources from a local git checkout at a pinned revision (``git show REV:PATH``), walks the
syntax tree (nothing is imported or run) and records every ``add_argument("--flag", ...)`` whose flag
names are string literals: the flag, its aliases, ``choices`` when they are a literal list, and whether it
takes no value (``store_true``/``store_false``). The output is the ``flags:`` part of a file in
``src/fleetwise/emit/data/``; the header (framework, version, commit, sources) is written by hand.

    python scripts/extract_framework_flags.py REPO_GIT_DIR REV PATH [PATH ...] > flags.yaml
"""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import yaml


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None


def flags_in(source: str, path: str) -> dict[str, dict[str, Any]]:
    """Every literal ``--flag`` declared by an ``add_argument`` call in ``source``."""
    out: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_argument"):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        longs = [n for n in names if n.startswith("--")]
        if not longs:
            continue
        fact: dict[str, Any] = {"source": path}
        for kw in node.keywords:
            if kw.arg == "choices":
                choices = _literal(kw.value)
                if isinstance(choices, (list, tuple)) and all(isinstance(c, (str, int)) for c in choices):
                    fact["choices"] = list(choices)
            elif kw.arg == "action":
                action = _literal(kw.value)
                if action in ("store_true", "store_false"):
                    fact["takes_value"] = False
        for alias in longs[1:]:
            out.setdefault(alias, {**fact, "alias_of": longs[0]})
        out.setdefault(longs[0], fact)
    return out


def main(argv: list[str]) -> int:
    repo, rev, *paths = argv
    flags: dict[str, dict[str, Any]] = {}
    for path in paths:
        text = subprocess.run(["git", "--git-dir", repo, "show", f"{rev}:{path}"], check=True,
                              capture_output=True, text=True).stdout
        for k, v in flags_in(text, path).items():
            flags.setdefault(k, v)
    yaml.safe_dump({"flags": dict(sorted(flags.items()))}, sys.stdout, sort_keys=False, allow_unicode=True,
                   width=120)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
