"""Regenerate the validation error table in README.md (between the VALIDATION markers).

Run: .venv/bin/python scripts/update_readme_errors.py
"""

from __future__ import annotations

import re
from pathlib import Path

from fleetwise.validate.runner import bundled_case_files, summarise, validate_files

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- VALIDATION:BEGIN -->", "<!-- VALIDATION:END -->"


def _summary_rows(data: dict, label: str) -> list[str]:
    rows = []
    loso = data.get("summary_leave_one_source_out", {})
    for g, s in data["summary"].items():
        if g == "sweeps":  # ranking of measured plan sweeps: its own line (sweep_line)
            continue
        lo = loso.get(g, {})
        lo_med = f"{100 * lo['median_ape']:.1f} %" if lo else "-"
        lo_25 = f"{100 * lo['within_25']:.0f} %" if lo else "-"
        rows.append(f"| {label} | {g} | {s['count']} | {100 * s['median_ape']:.1f} % | {100 * s['mean_ape']:.1f} % | "
                    f"{100 * s['within_10']:.0f} % | {100 * s['within_25']:.0f} % | {lo_med} | {lo_25} | "
                    f"{_coverage(s)} | {s['worst']['id']} ({100 * s['worst']['error']:+.0f} %) |")
    return rows


def _coverage(s: dict) -> str:
    return f"{100 * s['interval_coverage']:.0f} %" if "interval_coverage" in s else "-"


def sweep_line(data: dict) -> str:
    sw = data["summary"].get("sweeps")
    if not sw:
        return ""
    return (f"Plan sweeps (FORMAT.md 'Sweeps'): {sw['count']} sweeps of >= 3 measured runs; median regret of the "
            f"predicted-best plan {100 * sw['median_regret']:.1f} %, worst {100 * sw['max_regret']:.1f} %; pick "
            f"within 5 % of the measured best in {100 * sw['within_5']:.0f} % of sweeps; median Spearman "
            f"{sw['median_spearman']:.2f}.")


def render() -> str:
    files = bundled_case_files()
    lines = ["| file | group | cases | median abs. error | mean | within 10 % | within 25 % | "
             "leave-one-source-out median | LOSO within 25 % | 80 % interval coverage | worst |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    full = validate_files(files, loso=True)
    data = full.to_json()
    for f in files:
        report = validate_files([f], loso=f.name == "training.yaml")
        per_file = report.to_json()
        # serving constants are fitted on every bundled inference case (serving.yaml): a file's inference cases
        # are scored leave-one-source-out against that pool, not against the file's cases alone
        ids = {p.case.id for p in report.predictions if p.case.kind == "inference"}
        if ids and full.loso_errors is not None:
            held = {i: e for i, e in full.loso_errors.items() if i in ids}
            per_file.setdefault("summary_leave_one_source_out", {}).update(
                summarise([p for p in full.predictions if p.case.id in ids], held))
        lines += _summary_rows(per_file, f.name)
    lines += _summary_rows(data, "all files")
    lines += ["", sweep_line(data)]
    lines += ["", "Leave-one-source-out for inference cases refits the serving constants of `src/fleetwise/perf/"
              "data/serving.yaml` on all bundled inference cases but the case's source (same fitter and groups as "
              "`python -m fleetwise.validate.inference_cases`); training.yaml's row refits on that file alone.",
              "", "Every case but the runs of plan sweeps (those are summarised above):", "",
              "| case | metric | measured | predicted | 80 % interval | error | LOSO error |",
              "|---|---|---|---|---|---|---|"]
    swept = {s_["id"] for s_ in data.get("sweeps", [])}
    for c in data["cases"]:
        if c.get("sweep") or c["id"] in swept or c["id"].startswith("vtrain-"):
            continue
        for metric, v in c["metrics"].items():
            lo = c.get("loso_errors", {}).get(metric)
            lo_s = f"{100 * lo:+.1f} %" if lo is not None else "-"
            iv = f"{v['low']:.4g}–{v['high']:.4g}" if "low" in v else "-"
            lines.append(f"| {c['id']} | {metric} | {v['measured']:.4g} | {v['predicted']:.4g} | {iv} | "
                         f"{100 * v['error']:+.1f} % | {lo_s} |")
    if data["errors"]:
        lines += ["", f"Not predicted ({len(data['errors'])} cases):", ""]
        lines += [f"- `{e['id']}`: {e['message']}" for e in data["errors"]]
    return "\n".join(lines)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    table = render()
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    README.write_text(new, encoding="utf-8")
    print(table.split("\n\n")[0])


if __name__ == "__main__":
    main()
