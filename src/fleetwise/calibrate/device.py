"""One chip's efficiency parameters fitted on its device profile, written as a user catalog folder.

Entry points: ``fit_device(profile, accelerator)`` returns a ``DeviceFit`` (the user ``efficiency.yaml`` content
and the residual lines); ``write_catalog(fit, folder)`` writes ``efficiency.yaml`` and ``residuals.txt`` there, a
folder ``--catalog DIR`` layers over the bundled table. The fitter is the shipped table's (``calibrate/fit.py``);
what the profile does not measure stays as the bundled table has it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fleetwise.calibrate.fit import (
    K_REF,
    Entry,
    attention_points,
    collective_points,
    fit_gemm,
    fit_hbm,
    gemm_points,
    hyperbola_fit,
    ramp_fit,
)
from fleetwise.calibrate.shipped import rounded
from fleetwise.catalog.loader import load_yaml_file
from fleetwise.catalog.types import Accelerator
from fleetwise.errors import SpecError, cut
from fleetwise.perf.efficiency import DATA_FILE

WRITTEN_BY = "# Written by fleetwise calibrate fit"


@dataclass(frozen=True, slots=True)
class DeviceFit:
    """The user efficiency file's mapping, the residual table's lines, and what changed against the bundled table."""

    chip: str
    efficiency: dict[str, Any]
    residuals: tuple[str, ...]
    changed: tuple[str, ...]


def peaks(acc: Accelerator) -> dict[str, Any]:
    """The chip's catalog peaks in the fitter's (hardware.yaml) field names."""
    row: dict[str, Any] = {f"{p}_tflops": getattr(acc.peak_tflops, p) for p in ("fp32", "tf32", "bf16", "fp16",
                                                                                  "fp8", "int8", "fp4")}
    return row | {"hbm_tbps": acc.hbm_tbps, "scaleup_gbps_bidir": acc.scaleup_gbps_bidir,
                  "scaleout_gbit_per_chip": acc.scaleout_gbit_per_chip}


def _gemm(doc: Entry, chip: str, accel: Entry, lines: list[str]) -> dict[str, Entry]:
    pts, skipped = gemm_points(doc, accel, pooled={})
    lines += [f"GEMM entries left out: {s}" for s in skipped]
    fits, k_half = fit_gemm(pts, lines.append)
    own = dict(fits.get(chip, {}))
    small = [q for q in pts if q["k"] < K_REF]
    if small:
        lines.append(f"(small-K half point {k_half:.0f} is this device's; the shipped k_half is global and kept)")
    acc = accel[chip]
    for p, q in (("bf16", "fp16"), ("fp16", "bf16")):  # same tensor-core rate: one stands for the other
        if p not in own and q in own and acc.get(f"{p}_tflops") and acc[f"{p}_tflops"] == acc.get(f"{q}_tflops"):
            own[p] = own[q] | {"n_points": 0, "fitted_on": f"= {q} (same tensor-core rate, no {p} data): "
                               f"{own[q]['fitted_on']}"}
    return own


def _attention(doc: Entry, chip: str, bundled: Entry, lines: list[str]) -> Entry | None:
    pts = attention_points(doc).get(chip, [])
    if not pts:
        return None
    best = max(q[0] for q in pts)
    fwd = [q for q in pts if q[0] == best and q[1] == "fwd" and not q[2] and q[5] == 128]
    bwd = [q for q in pts if q[0] == best and q[1] == "bwd" and q[3] >= 4096]
    if not fwd:
        lines.append("attention: no non-causal head-dim-128 fwd point; the bundled fit is kept")
        return None
    s, eff = np.array([q[3] for q in fwd], float), np.array([q[4] for q in fwd])
    swept = len(set(s)) > 2
    e_f, s_half, rms = ramp_fit(s, eff, None if swept else float(bundled["s_half"]))
    lines.append(f"\nAttention eff(S) = e S/(S + s_half)\n{chip:24s} fwd  {e_f:6.3f} {s_half:7.0f} {len(fwd):3d} "
                 f"{rms:7.3f}")
    note = f"device profile: fwd {len(fwd)} non-causal hd128 pts, S {int(s.min())}-{int(s.max())}"
    note += "" if swept else "; s_half kept from the bundled table (no sweep)"
    row: Entry = {"fwd": e_f, "bwd": None, "s_half": s_half}
    if bwd:
        sb, eb = np.array([q[3] for q in bwd], float), np.array([q[4] for q in bwd])
        row["bwd"], _, rms = ramp_fit(sb, eb, s_half)
        lines.append(f"{chip:24s} bwd  {row['bwd']:6.3f} {s_half:7.0f} {len(bwd):3d} {rms:7.3f}")
        note += f"; bwd {len(bwd)} pts S >= 4096"
    else:
        ratio = float(bundled["bwd"]) / float(bundled["fwd"])
        row["bwd"] = e_f * ratio
        note += f"; bwd = fwd x {ratio:.2f} (the bundled bwd/fwd, no bwd data)"
    return row | {"fitted_on": note}


def _collective(doc: Entry, chip: str, accel: Entry, shipped: Entry, lines: list[str]) -> dict[str, Entry]:
    """A scale-up all-reduce fit of this chip, which takes the place of the bundled entry that applied to it."""
    line = (accel[chip].get("scaleup_gbps_bidir") or 0) / 2
    acc: dict[str, list[Any]] = {"plateau": [], "curve": [], "floor": []}
    fast = False
    for e in doc["collectives"]:
        if e["nodes"] == 1 and e["collective"] in ("all_reduce", "all_gather", "reduce_scatter") and line:
            got = collective_points(e, line)
            fast |= e["measured"]["value"] is not None and e["measured"]["value"] > line
            for k in acc:
                acc[k] += got[k]
    acc["floor"] += [o["measured"]["value"] * 1e-6 for o in doc["overheads"]
                     if o["kind"] == "collective_small_message_latency" and o["measured"]["value"]]
    if not acc["plateau"]:
        return {}
    algo = "nvls" if fast else "ring"  # busbw above the line rate: an in-switch reduction
    old = {n: c for n, c in shipped.items() if c.get("tier") == "scaleup" and chip in (c.get("applies_to") or [])
           and (c.get("algorithm") == "nvls") == fast}
    base: Entry = next(iter(old.values()), {})
    b, s_half, rms = hyperbola_fit(acc["plateau"], acc["curve"])
    alpha = float(np.median(acc["floor"])) if acc["floor"] else base.get("alpha_s")
    lines.append(f"\nScale-up {algo} busbw/line = B S/(S + S_half): B {b:.3f}, S_half {s_half or np.nan:.3g} B, "
                 f"alpha {alpha or np.nan:.3g} s, {len(acc['curve'])} curve pts, rms log {rms:.3f}")
    out: dict[str, Entry] = {name: {"applies_to": [c for c in entry["applies_to"] if c != chip]}
                             for name, entry in old.items()}
    out[f"device_{chip}_scaleup"] = {
        "applies_to": [chip], "tier": "scaleup", "algorithm": algo, "bw_basis": "scaleup_unidir",
        "busbw_frac": b, "s_half_bytes": s_half if s_half is not None else base.get("s_half_bytes", 16e6),
        "alpha_s": alpha if alpha is not None else 30e-6,
        "fitted_on": f"device profile: {len(acc['plateau'])} plateaus, {len(acc['curve'])} curve pts"
        + ("" if s_half is not None else "; s_half kept from " + ", ".join(old) if old else "")}
    return out


def fit_device(doc: Entry, acc: Accelerator, source: str = "profile") -> DeviceFit:
    """Fit one chip's GEMM, attention, HBM and scale-up collective parameters on its profile.

    Args:
        doc: a profile validated by ``load_profile`` for ``acc``.
        acc: the catalog accelerator (its peaks are the efficiencies' basis, as in the bundled table).
        source: the profile's file name, for messages and the output header.

    Returns:
        The fit; kinds the profile does not measure are left to the bundled table.
    """
    chip, header = acc.id, doc["profile"]
    if header["device_kind"] == "cpu":
        raise SpecError(f"{source}: profile.device_kind: measured on the host CPU ({header['device']}), so its "
                        f"efficiencies are not those of {chip}; run 'fleetwise calibrate bench --backend torch "
                        "--device cuda|npu' on that chip")
    bundled_all = load_yaml_file(DATA_FILE)  # the shipped table only: a user folder must not fit on itself
    bundled = (bundled_all.get("chips") or {}).get(chip) or {}
    from fleetwise.perf.efficiency import load_efficiency

    resolved = load_efficiency(DATA_FILE).chip(chip)  # what the model uses for this chip today
    ref_attn = bundled.get("attention") or {"fwd": resolved.attn_fwd, "bwd": resolved.attn_bwd,
                                            "s_half": resolved.attn_s_half}
    accel = {chip: peaks(acc)}
    lines: list[str] = [f"fit of {chip} on {source} ({header['backend']} on {header['device']}, {header['date']})"]
    row: Entry = {}
    gemm = _gemm(doc, chip, accel, lines)
    if gemm:
        row["gemm"] = gemm
    attn = _attention(doc, chip, ref_attn, lines)
    if attn:
        row["attention"] = attn
    lines.append("")
    hbm = fit_hbm(doc, lines.append).get(chip)
    if hbm:
        row["hbm"] = hbm | {"fitted_on": "device profile: " + hbm["fitted_on"]}
    collectives = _collective(doc, chip, accel, bundled_all.get("collectives") or {}, lines)
    if not row and not collectives:
        raise SpecError(f"{source}: nothing to fit: no GEMM with M, N >= 512 at bf16/fp16/fp8/fp4, no attention "
                        "with pct_of_peak, no stream with an hbm_tbps basis and no scale-up collective")
    if not bundled and row:  # a chip new to the table: what was not measured is what the model used before
        kept = f"kept from the bundled table ({resolved.borrowed_from or 'defaults'}): not measured"
        gemm_kept = {p: {"e_max": g.e_max, "t0_s": g.t0_s, "n_points": 0, "fitted_on": kept}
                     for p, g in resolved.gemm.items()}
        row = {"gemm": gemm_kept | row.get("gemm", {}), "attention": ref_attn | {"fitted_on": kept},
               "hbm": {"e": resolved.hbm, "fitted_on": kept}} | {k: v for k, v in row.items() if k != "gemm"}
    if row:
        measured_all = {"gemm", "attention", "hbm"} <= set(row) and "bf16" in row["gemm"]
        row["borrowed_from"] = None if measured_all else (bundled.get("borrowed_from") or resolved.borrowed_from)
    _check_plausible(row, collectives, source, chip)
    changed = _changes(row, bundled, collectives)
    lines.append("\nchanged against the bundled table:\n  " + ("\n  ".join(changed) or "nothing"))
    doc_out: dict[str, Any] = {"chips": {chip: row}} if row else {}
    if collectives:
        doc_out["collectives"] = collectives
    return DeviceFit(chip, rounded(doc_out), tuple(lines), tuple(changed))  # type: ignore[arg-type]


# Fitted values outside these ranges (fractions of the catalog peak) mean a profile of another device or a broken
# run, not a slow chip: the lowest shipped fits are 0.49 (GEMM), 0.45 / 0.35 (attention fwd / bwd), 0.75 (HBM)
# and 0.5 (all-reduce), so the floors leave a factor of 7-17 below them for immature software stacks.
PLAUSIBLE = {"gemm e_max": (0.05, 1.0), "attention fwd": (0.02, 1.0), "attention bwd": (0.02, 1.0),
             "hbm e": (0.05, 1.1), "all-reduce busbw_frac": (0.02, 3.0)}


def _check_plausible(row: Entry, collectives: dict[str, Entry], source: str, chip: str) -> None:
    values = [("gemm e_max", f"gemm.{p}.e_max", g["e_max"]) for p, g in (row.get("gemm") or {}).items()
              if g.get("n_points")]
    values += [(f"attention {k}", f"attention.{k}", row["attention"][k]) for k in ("fwd", "bwd")
               if "attention" in row and str(row["attention"].get("fitted_on", "")).startswith("device")]
    if "hbm" in row and str(row["hbm"].get("fitted_on", "")).startswith("device"):
        values.append(("hbm e", "hbm.e", row["hbm"]["e"]))
    values += [("all-reduce busbw_frac", f"collectives.{n}.busbw_frac", c["busbw_frac"])
               for n, c in collectives.items() if "busbw_frac" in c]
    for kind, field, v in values:
        lo, hi = PLAUSIBLE[kind]
        if not lo <= v <= hi:
            raise SpecError(f"{source}: fitted {field} = {v:.3g} of {chip}'s catalog peak is outside {lo}-{hi}: "
                            "is the profile of another device (or a run that failed)?")


def _changes(row: Entry, bundled: Entry, collectives: dict[str, Entry]) -> list[str]:
    out = []
    for p, g in (row.get("gemm") or {}).items():
        old = (bundled.get("gemm") or {}).get(p, {})
        out.append(f"gemm.{p}.e_max {old.get('e_max', '-')} -> {g['e_max']:.4g}, "
                   f"t0_s {old.get('t0_s', '-')} -> {g['t0_s']:.4g}")
    for kind, keys in (("attention", ("fwd", "bwd", "s_half")), ("hbm", ("e",))):
        if kind in row:
            old = bundled.get(kind) or {}
            out += [f"{kind}.{k} {old.get(k, '-')} -> {row[kind][k]:.4g}"
                    + (" (same)" if old.get(k) == float(f"{row[kind][k]:.4g}") else "") for k in keys]
    out += [f"collectives.{n}: {c.get('busbw_frac', 'applies_to ' + str(c['applies_to']))}"
            for n, c in collectives.items()]
    return out


def write_catalog(fit: DeviceFit, folder: Path, profile_path: Path) -> list[Path]:
    """Write ``efficiency.yaml`` (layered over the bundled one by ``--catalog``) and ``residuals.txt``."""
    folder = Path(folder)
    eff = folder / "efficiency.yaml"
    if eff.is_file() and not eff.read_text(encoding="utf-8").startswith(WRITTEN_BY):
        raise SpecError(f"{eff}: exists and was not written by 'fleetwise calibrate fit'; choose another --out "
                        "(a fit never overwrites a hand-made catalog file)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(fit, folder, eff, profile_path)
    except OSError as exc:
        raise SpecError(f"{cut(str(folder), 200)}: cannot write the catalog folder ({exc.strerror})") from None
    return [eff, folder / "residuals.txt"]


def _write(fit: DeviceFit, folder: Path, eff: Path, profile_path: Path) -> None:
    digest = hashlib.sha256(Path(profile_path).read_bytes()).hexdigest()[:16]
    eff.write_text(f"{WRITTEN_BY} for {fit.chip} from {Path(profile_path).name} "
                   f"(sha256 {digest}).\n# Layered over the bundled perf/data/efficiency.yaml by --catalog "
                   f"{folder}: keys given here replace the bundled ones.\n"
                   + yaml.safe_dump(fit.efficiency, sort_keys=False, width=110, default_flow_style=None),
                   encoding="utf-8")
    (folder / "residuals.txt").write_text("\n".join(fit.residuals) + "\n", encoding="utf-8")
