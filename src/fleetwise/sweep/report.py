"""Sweep results as a summary table and plots.

``summary`` groups the rows by model, workload and objective and lists, per hardware, the best throughput at
each chip count; ``match_curve`` answers "how many of ours match N of theirs" from the rows (the fewest chips of
``ours`` whose total throughput reaches ``theirs`` on N chips, same model and workload); ``plot`` draws
throughput per chip against chips per chip type, and the match curves (matplotlib, the ``plot`` extra, imported
only when plotting). Entry points: ``summary``, ``match_curve``, ``plot``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from fleetwise.errors import SpecError


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("status") == "ok" and r.get("tokens_per_s") is not None]


def summary(rows: list[dict[str, Any]]) -> str:
    """A text table: per (model, workload, objective) and hardware, tokens/s/chip at each chip count."""
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[str(r.get("status"))] += 1
    lines = [f"{len(rows):,} scenarios: " + ", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()))]
    groups: dict[tuple[str, str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in _ok(rows):
        key = (str(r["model"]), str(r["workload"]), str(r["objective"]))
        hw = str(r["system"] or r["hardware"])
        groups[key][hw][int(r["chips"])] = float(r["tokens_per_s_per_chip"])
    for (model, wl, obj), by_hw in sorted(groups.items()):
        chips = sorted({c for v in by_hw.values() for c in v})
        lines.append("")
        lines.append(f"{model} / {wl} / objective {obj}: tokens/s per chip")
        head = f"  {'hardware':<28}" + "".join(f"{c:>10,}" for c in chips)
        lines.append(head)
        for hw, vals in sorted(by_hw.items()):
            lines.append(f"  {hw:<28}" + "".join(f"{vals[c]:>10,.0f}" if c in vals else f"{'-':>10}" for c in chips))
    return "\n".join(lines)


def match_curve(rows: list[dict[str, Any]], ours: str, theirs: str, model: str, workload: str,
                objective: str | None = None) -> list[tuple[int, int | None]]:
    """(N of theirs, fewest of ours matching their total throughput, or None when no swept count does)."""
    def pick(hw: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for r in _ok(rows):
            if (r["hardware"] == hw or r["system"] == hw) and r["model"] == model and r["workload"] == workload \
                    and (objective is None or r["objective"] == objective):
                out[int(r["chips"])] = max(out.get(int(r["chips"]), 0.0), float(r["tokens_per_s"]))
        return out

    mine, other = pick(ours), pick(theirs)
    curve = []
    for n, target in sorted(other.items()):
        enough = [c for c, t in sorted(mine.items()) if t >= target]
        curve.append((n, enough[0] if enough else None))
    return curve


def plot(rows: list[dict[str, Any]], out_dir: str | Path, ours: str | None = None,
         theirs: str | None = None) -> list[Path]:
    """Write throughput-vs-chips plots (one per model/workload) and, given ``ours``/``theirs``, match curves."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SpecError("plots need matplotlib: pip install 'fleetwise[plot]'") from None
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    series: dict[tuple[str, str], dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for r in _ok(rows):
        series[(str(r["model"]), str(r["workload"]))][str(r["system"] or r["hardware"])].append(
            (int(r["chips"]), float(r["tokens_per_s_per_chip"])))
    for (model, wl), by_hw in sorted(series.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for hw, pts in sorted(by_hw.items()):
            best: dict[int, float] = {}
            for c, t in pts:
                best[c] = max(best.get(c, 0.0), t)
            xs = sorted(best)
            ax.plot(xs, [best[x] for x in xs], marker="o", label=hw)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("chips")
        ax.set_ylabel("tokens/s per chip")
        ax.set_title(f"{model} / {wl}")
        ax.legend(fontsize=7)
        p = d / f"throughput_{model}_{wl}.png".replace("/", "_")
        fig.tight_layout()
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(p)
    if ours and theirs:
        for model, wl in sorted(series):
            curve = [(n, m) for n, m in match_curve(rows, ours, theirs, model, wl) if m is not None]
            if not curve:
                continue
            fig, ax = plt.subplots(figsize=(5, 4))
            ax.plot([n for n, _ in curve], [m for _, m in curve], marker="o")
            ax.set_xlabel(f"{theirs} chips")
            ax.set_ylabel(f"{ours} chips to match")
            ax.set_title(f"{model} / {wl}")
            p = d / f"match_{ours}_vs_{theirs}_{model}_{wl}.png".replace("/", "_")
            fig.tight_layout()
            fig.savefig(p, dpi=100)
            plt.close(fig)
            written.append(p)
    return written
