"""``import fleetwise`` and ``fleetwise --help`` stay light: heavy modules load when a command needs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

import fleetwise

HEAVY = ("numpy", "pydantic", "yaml", "fleetwise.api", "fleetwise.search.evaluate", "fleetwise.catalog.loader")


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_import_and_help_load_no_heavy_module() -> None:
    for code in ("import fleetwise", "import fleetwise.cli.main as m\nm.build_parser().format_help()"):
        loaded = _loaded_after(code)
        assert not [h for h in HEAVY if h in loaded], code


def test_public_names_still_resolve() -> None:
    assert fleetwise.plan_training.__module__.startswith("fleetwise.api")
    assert fleetwise.TrainingPlan.__name__ == "TrainingPlan"
    assert set(fleetwise.__all__) == set(fleetwise._WHERE) and set(fleetwise.__all__) <= set(dir(fleetwise))
    try:
        fleetwise.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("unknown attribute resolved")


def test_c_loader_gives_the_same_values_as_the_python_loader() -> None:
    files = sorted(Path(fleetwise.__file__).parent.rglob("*.yaml"))
    assert len(files) > 100
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=yaml.SafeLoader) == yaml.load(  # noqa: S506
            text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)), f
