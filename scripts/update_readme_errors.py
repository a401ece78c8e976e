"""Regenerate the validation error table in README.md (between the VALIDATION markers).

Run: .venv/bin/python scripts/update_readme_errors.py
"""

from __future__ import annotations

import re
from pathlib import Path

from fleetwise.validate.runner import bundled_case_files, validate_files

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- VALIDATION:BEGIN -->", "<!-- VALIDATION:END -->"


def _summary_rows(data: dict, label: str) -> list[str]:
    rows = []
    loso = data.get("summary_leave_one_source_out", {})
    for g, s in data["summary"].items():
        lo = loso.get(g, {})
        lo_med = f"{100 * lo['median_ape']:.1f} %" if lo else "-"
        lo_25 = f"{100 * lo['within_25']:.0f} %" if lo else "-"
        rows.append(f"| {label} | {g} | {s['count']} | {100 * s['median_ape']:.1f} % | {100 * s['mean_ape']:.1f} % | "
                    f"{100 * s['within_10']:.0f} % | {100 * s['within_25']:.0f} % | {lo_med} | {lo_25} | "
                    f"{s['worst']['id']} ({100 * s['worst']['error']:+.0f} %) |")
    return rows


def render() -> str:
    files = bundled_case_files()
    lines = ["| file | group | cases | median abs. error | mean | within 10 % | within 25 % | "
             "leave-one-source-out median | LOSO within 25 % | worst |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in files:
        lines += _summary_rows(validate_files([f], loso=f.name == "training.yaml").to_json(), f.name)
    data = validate_files(files, loso=True).to_json()
    lines += _summary_rows(data, "all files")
    lines += ["", "Leave-one-source-out for serving constants is in `src/fleetwise/perf/data/serving.yaml` "
              "(refit by `python -m fleetwise.validate.inference_cases`).",
              "", "| case | metric | measured | predicted | error | LOSO error |", "|---|---|---|---|---|---|"]
    for c in data["cases"]:
        for metric, v in c["metrics"].items():
            lo = c.get("loso_errors", {}).get(metric)
            lo_s = f"{100 * lo:+.1f} %" if lo is not None else "-"
            lines.append(f"| {c['id']} | {metric} | {v['measured']:.4g} | {v['predicted']:.4g} | "
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
