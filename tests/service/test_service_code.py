"""Code rules of the service, the reports and their commands: YAML only through safe loaders, nothing
unpickled or evaluated, no CDN or outside URL in the page."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "fleetwise"
MODULES = [*(SRC / "service").rglob("*.py"), *(SRC / "report").glob("*.py"), SRC / "cli" / "studies.py",
           SRC / "cli" / "server.py"]


def test_no_unsafe_loaders_in_the_service() -> None:
    unsafe = re.compile(r"yaml\.(load|unsafe_load|full_load)\(|pickle|\beval\(|\bexec\(|shell=True")
    found = [f"{p.name}: {m.group(0)}" for p in MODULES for m in unsafe.finditer(p.read_text())]
    assert found == []


def test_the_page_loads_nothing_from_outside() -> None:
    for page in (SRC / "service" / "ui").iterdir():
        text = page.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), page.name
        assert "fetch(\"http" not in text and "cdn" not in text.lower(), page.name
