"""Static plots of a study with matplotlib (the ``[plot]`` extra): breakdown bars and the Pareto front.

Entry point: ``save_plot(study, path)`` writes PNG or SVG by the file's suffix.
"""

from __future__ import annotations

from pathlib import Path

from fleetwise.errors import SpecError
from fleetwise.report.charts import study_plans
from fleetwise.study import Study

FORMATS = (".png", ".svg")


def save_plot(study: Study, path: str | Path) -> Path:
    """Write the breakdown of the ranked plans and, where the study has one, its time-vs-memory Pareto front.

    Args:
        study: a study with rows (plans).
        path: the output file, ``.png`` or ``.svg``.

    Returns:
        The path written.
    """
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise SpecError(f"--plot: the file must end in .png or .svg (got {p.name[:80]!r})")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("--plot needs matplotlib: pip install 'fleetwise[plot]'") from None
    plans = study_plans(study)
    ranked = [q for q in plans if q["rank"] is not None and q["parts"]]
    if not ranked:
        raise SpecError(f"--plot: the {study.kind} study has no plans with a time breakdown to plot")
    front = [q for q in plans if "pareto" in q["fronts"] and isinstance(q["memory_gb"], (int, float))]
    fig, axes = plt.subplots(1, 2 if front else 1, figsize=(13 if front else 7, 4.5), squeeze=False)
    ax = axes[0][0]
    parts = list(dict.fromkeys(part["part"] for q in ranked for part in q["parts"]))
    labels = [f"{q['rank']}. {q['label']}" for q in ranked][::-1]
    left = [0.0] * len(ranked)
    cmap = plt.get_cmap("tab10")
    for j, name in enumerate(parts):
        widths = [next((x["seconds"] for x in q["parts"] if x["part"] == name), 0.0) for q in ranked][::-1]
        ax.barh(labels, widths, left=left, label=name, color=cmap(j % 10))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("seconds per step")
    ax.set_title(f"{study.inputs.get('model', '')} on {study.inputs.get('chips', '')} "
                 f"{study.inputs.get('hardware', '')}: time by part", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    if front:
        ax2 = axes[0][1]
        allp = [q for q in plans if isinstance(q["memory_gb"], (int, float)) and isinstance(q["step_time_s"], float)]
        ax2.scatter([q["step_time_s"] for q in allp], [q["memory_gb"] for q in allp], color="#9aa", s=18,
                    label="plans")
        front.sort(key=lambda q: q["step_time_s"])
        ax2.step([q["step_time_s"] for q in front], [q["memory_gb"] for q in front], where="post", color="#d62728",
                 marker="o", label="Pareto front")
        ax2.set_xlabel("step time (s)")
        ax2.set_ylabel("memory per device (GB)")
        ax2.set_title("step time vs memory", fontsize=10)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(p, format=p.suffix.lower()[1:], metadata={"Date": None} if p.suffix.lower() == ".svg" else None)
    plt.close(fig)
    return p
