"""A real browser (Debian's Chromium driven by Playwright) on the page: run a training plan, see the table and
the Pareto chart, click a point, see its breakdown. Every request outside the server is refused, so the page
works offline. Screenshots are kept in .test-artifacts/browser/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetwise.catalog import Catalog
from fleetwise.service.store import Store
from tests.service.conftest import REPO, serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / ".test-artifacts" / "browser"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def page_url(tmp_path: Path, catalog: Catalog) -> Iterator[str]:
    store = Store.open(str(tmp_path / "studies.db"))
    with serve(store, catalog) as srv:
        yield srv.url
    store.close()


def test_page_runs_a_plan_and_shows_the_breakdown_of_a_clicked_pareto_point(page_url: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    outside: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def route(r: object) -> None:
            url = r.request.url  # type: ignore[attr-defined]
            if url.startswith(page_url) or url.startswith("data:"):
                r.continue_()  # type: ignore[attr-defined]
            else:
                outside.append(url)
                r.abort()  # type: ignore[attr-defined]

        page.route("**/*", route)
        page.set_default_timeout(90_000)
        page.goto(page_url + "/#/new")
        page.select_option("#f-model", "gpt3-125m")
        page.select_option("#f-hardware", "nvidia_h100_sxm")
        page.fill("#f-chips", "8")
        page.fill("#f-seq_len", "2048")
        page.fill("#f-top", "5")
        page.screenshot(path=str(ARTIFACTS / "1-form.png"))
        page.click("#run-plan")
        page.wait_for_url("**/#/study/*")
        page.wait_for_selector("table.fw-plans tbody tr")
        assert page.locator("table.fw-plans tbody tr").count() == 5
        assert "tp1" in page.locator("table.fw-plans tbody tr").first.inner_text()
        page.wait_for_selector("#fw-chart-pareto_memory[data-ready='1'] svg")
        points = page.locator("#fw-chart-pareto_memory g.mark-symbol.role-mark path")
        assert points.count() >= 3
        page.locator("#fw-chart-pareto_memory").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "2-study.png"), full_page=True)
        points.nth(points.count() - 1).click(force=True)
        page.wait_for_selector("#fw-breakdown-chart svg")
        heading = page.locator("#fw-detail h3").inner_text()
        assert heading.startswith("Plan tp")
        parts = page.locator("#fw-detail tr.fw-part").all_inner_texts()
        assert any(p.startswith("compute") for p in parts)
        page.locator("#fw-detail").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "3-breakdown.png"))
        page.goto(page_url + "/#/studies")
        page.wait_for_selector("#study-list tbody tr")
        page.screenshot(path=str(ARTIFACTS / "4-studies.png"))
        browser.close()
    assert outside == []
    assert errors == []
