"""The HTTP API over both database backends: studies created through run_study, stored whole, listed,
compared, exported and deleted; unknown ids give 404 with a message, never a traceback."""

from __future__ import annotations

import csv
import io
import json

import httpx

from fleetwise.study import Study
from tests.service.conftest import SMALL_PLAN, explain_inputs


def test_plan_study_is_stored_listed_exported_and_deleted(service: httpx.Client) -> None:
    r = service.post("/api/studies", json={"kind": "plan_train", "inputs": SMALL_PLAN})
    assert r.status_code == 201, r.text
    study = Study.from_dict(r.json())
    assert study.kind == "plan_train" and study.rows
    got = service.get(f"/api/studies/{study.id}")
    assert Study.from_json(got.content) == study
    listed = service.get("/api/studies", params={"q": "gpt3-125m h100"}).json()["studies"]
    assert [s["id"] for s in listed] == [study.id]
    assert service.get("/api/studies", params={"q": "llama"}).json()["studies"] == []
    exported = service.get(f"/api/studies/{study.id}/export/json")
    assert Study.from_json(exported.content) == study
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(service.get(f"/api/studies/{study.id}/export/csv").text)))
    assert len(rows) == len(study.rows)
    assert float(rows[0]["step_time_s"]) == study.rows[0]["step_time_s"]
    assert service.delete(f"/api/studies/{study.id}").status_code == 204
    gone = service.get(f"/api/studies/{study.id}")
    assert gone.status_code == 404 and study.id in gone.json()["error"]


def test_same_question_is_stored_once(service: httpx.Client) -> None:
    body = {"kind": "explain_train", "inputs": explain_inputs(4)}
    a = service.post("/api/studies", json=body).json()
    b = service.post("/api/studies", json=body).json()
    assert a["id"] == b["id"]
    assert service.get("/api/health").json()["studies"] == 1


def test_compare_puts_the_best_plans_side_by_side(service: httpx.Client) -> None:
    ids = [service.post("/api/studies", json={"kind": "explain_train", "inputs": explain_inputs(m)}).json()["id"]
           for m in (2, 8)]
    d = service.get("/api/compare", params={"ids": ",".join(ids)}).json()
    assert [s["id"] for s in d["studies"]] == ids
    times = [s["best"]["step_time_s"] for s in d["studies"]]
    assert all(t > 0 for t in times) and times[0] != times[1]
    assert {v["metric"] for v in d["spec"]["data"]["values"]} >= {"step_time_s", "mfu"}


def test_unknown_and_malformed_ids_are_404_with_a_message(sqlite_service: httpx.Client) -> None:
    for path in ("/api/studies/0123456789abcdef", "/api/studies/../../etc/passwd", "/api/studies/ZZZ",
                 "/api/studies/0123456789abcdef/export/csv", "/api/studies/0123456789abcdef/charts",
                 "/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/nope", "/api/catalog/models/nope",
                 "/api/catalog/secrets/x", "/api/nothing-here"):
        r = sqlite_service.get(path)
        assert r.status_code == 404, path
        assert "Traceback" not in r.text and r.json()["error"], path
    assert sqlite_service.delete("/api/studies/0123456789abcdef").status_code == 404


def test_bad_inputs_are_422_naming_the_field(sqlite_service: httpx.Client) -> None:
    cases = [({"kind": "plan_train", "inputs": {"model": "gpt3-125m"}}, "hardware"),
             ({"kind": "plan_train", "inputs": {**SMALL_PLAN, "chips": "many"}}, "chips"),
             ({"kind": "plan_train", "inputs": {**SMALL_PLAN, "model": "no-such-model"}}, "no-such-model"),
             ({"kind": "plan_train", "inputs": {**SMALL_PLAN, "colour": "red"}}, "colour"),
             ({"kind": "no_such_kind", "inputs": {}}, "kind must be one of"),
             ({"kind": "plan_train", "inputs": {}, "extra": 1}, "extra")]
    for body, needle in cases:
        r = sqlite_service.post("/api/studies", json=body)
        assert r.status_code == 422, body
        assert needle in r.json()["error"], (needle, r.json())


def test_catalog_browser_lists_and_shows_entries(sqlite_service: httpx.Client) -> None:
    cat = sqlite_service.get("/api/catalog").json()
    assert {"accelerators", "systems", "fabrics", "models"} <= set(cat)
    assert "nvidia_h100_sxm" in [e["id"] for e in cat["accelerators"]]
    entry = sqlite_service.get("/api/catalog/accelerators/nvidia_h100_sxm").json()
    assert entry["spec"]["id"] == "nvidia_h100_sxm"


def test_job_progress_streams_until_the_study_is_stored(sqlite_service: httpx.Client) -> None:
    r = sqlite_service.post("/api/jobs", json={"kind": "plan_train", "inputs": SMALL_PLAN})
    assert r.status_code == 202
    job = r.json()
    states = []
    with sqlite_service.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                states.append(json.loads(line[6:]))
    assert states[-1]["state"] == "done" and states[-1]["total"] > 0
    assert states[-1]["done"] == states[-1]["total"]
    assert sqlite_service.get(f"/api/studies/{states[-1]['study_id']}").status_code == 200
    assert sqlite_service.get(f"/api/jobs/{job['id']}").json()["state"] == "done"


def test_page_and_vendored_scripts_are_served_from_the_process(sqlite_service: httpx.Client) -> None:
    page = sqlite_service.get("/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in "".join(line for line in page.text.splitlines() if "<script" in line)
    for path in ("/assets/vendor/vega.min.js", "/assets/vendor/vega-lite.min.js", "/assets/vendor/vega-embed.min.js",
                 "/assets/study.js", "/ui/app.js", "/assets/vendor/LICENSES/vega.LICENSE"):
        assert sqlite_service.get(path).status_code == 200, path
    assert sqlite_service.get("/assets/../service/store.py").status_code == 404
    assert sqlite_service.get("/api/openapi.json").json()["info"]["title"] == "fleetwise"
