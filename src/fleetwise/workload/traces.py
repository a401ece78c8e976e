"""Request traces for the serving simulator: readers for real traces and synthetic arrival processes.

Entry points: ``load_trace(path)`` (Azure LLM 2023 CSV, Mooncake JSONL, or a plain
``arrival_s,input_tokens,output_tokens`` CSV), ``bundled_trace(name)`` and ``synthetic_trace`` (Poisson
or Gamma arrivals). A malformed file raises ``SpecError`` naming the file, line and field.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import is_file
from fleetwise.errors import SpecError, cut

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DATA_DIR = Path(__file__).parent / "data" / "traces"
BUNDLED = {"azure_conv": "azure_llm_2023_conv.csv", "azure_code": "azure_llm_2023_code.csv",
           "mooncake_conversation": "mooncake_fast25_conversation.jsonl"}


@dataclass(frozen=True, slots=True)
class Trace:
    """Requests sorted by arrival: seconds from the first arrival, prompt and output lengths in tokens."""

    arrival_s: FloatArray
    input_tokens: IntArray
    output_tokens: IntArray
    source: str

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def head(self, n: int) -> Trace:
        return Trace(self.arrival_s[:n], self.input_tokens[:n], self.output_tokens[:n], self.source)


def _number(text: str, where: str, name: str) -> float:
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {name} must be a number (got {text!r})") from None
    if not math.isfinite(v):
        raise SpecError(f"{where}: {name} must be finite (got {text!r})")
    return v


def _length(text: object, where: str, name: str) -> int:
    v = _number(str(text), where, name)
    if v < 0 or v != int(v):
        raise SpecError(f"{where}: {name} must be a whole number >= 0 (got {text!r})")
    return int(v)


def _azure_time(text: str, where: str) -> float:
    """``YYYY-MM-DD HH:MM:SS.fffffff`` (7 fractional digits) to POSIX seconds, without %f's 6-digit limit."""
    head, _, frac = text.strip().partition(".")
    try:
        base = datetime.strptime(head, "%Y-%m-%d %H:%M:%S").timestamp()
    except ValueError:
        raise SpecError(f"{where}: TIMESTAMP must read YYYY-MM-DD HH:MM:SS[.fraction] (got {text!r})") from None
    if frac and not frac.isdigit():
        raise SpecError(f"{where}: TIMESTAMP fraction must be digits (got {text!r})")
    return base + (int(frac) / 10 ** len(frac) if frac else 0.0)


def _finish(path: Path, t: list[float], i: list[int], o: list[int], lines: list[int]) -> Trace:
    if not t:
        raise SpecError(f"{path}: no requests")
    arr = np.asarray(t, dtype=np.float64)
    back = np.nonzero(np.diff(arr) < 0)[0]
    if back.size:
        k = int(back[0]) + 1
        raise SpecError(f"{path}:{lines[k]}: arrival times must be sorted (got {t[k]!r} after {t[k - 1]!r})")
    return Trace(arr - arr[0], np.asarray(i, dtype=np.int64), np.asarray(o, dtype=np.int64), str(path))


def _read_csv(path: Path) -> Trace:
    with path.open(newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if header is None:
            raise SpecError(f"{path}: empty file")
        cols = [h.strip() for h in header]
        layouts = {"azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens"),
                   "plain": ("arrival_s", "input_tokens", "output_tokens")}
        kind = next((k for k, need in layouts.items() if all(c in cols for c in need)), None)
        if kind is None:
            wanted = " or ".join(",".join(v) for v in layouts.values())
            missing = [c for c in layouts["azure" if "TIMESTAMP" in cols else "plain"] if c not in cols]
            raise SpecError(f"{path}:1: missing column(s) {', '.join(missing)} (need {wanted}; got {','.join(cols)})")
        ti, ii, oi = (cols.index(c) for c in layouts[kind])
        t: list[float] = []
        i: list[int] = []
        o: list[int] = []
        lines: list[int] = []
        for n, row in enumerate(rows, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            where = f"{path}:{n}"
            if len(row) < len(cols):
                raise SpecError(f"{where}: expected {len(cols)} fields, got {len(row)}")
            t.append(_azure_time(row[ti], where) if kind == "azure" else _number(row[ti], where, "arrival_s"))
            i.append(_length(row[ii], where, cols[ii]))
            o.append(_length(row[oi], where, cols[oi]))
            lines.append(n)
    return _finish(path, t, i, o, lines)


def _read_jsonl(path: Path) -> Trace:
    t: list[float] = []
    i: list[int] = []
    o: list[int] = []
    lines: list[int] = []
    with path.open() as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise SpecError(f"{where}: expected an object")
            missing = [k for k in ("timestamp", "input_length", "output_length") if k not in rec]
            if missing:
                raise SpecError(f"{where}: missing field(s) {', '.join(missing)}")
            t.append(_number(str(rec["timestamp"]), where, "timestamp") / 1000.0)  # milliseconds
            i.append(_length(rec["input_length"], where, "input_length"))
            o.append(_length(rec["output_length"], where, "output_length"))
            lines.append(n)
    return _finish(path, t, i, o, lines)


def load_trace(path: str | Path) -> Trace:
    """Read a trace file (``.csv``: Azure or plain layout; ``.jsonl``: Mooncake), or a bundled name."""
    p = Path(path)
    if not is_file(p) and str(path) in BUNDLED:
        p = DATA_DIR / BUNDLED[str(path)]
    if not is_file(p):
        raise SpecError(f"{cut(str(path), 200)}: no such trace file (bundled names: {', '.join(BUNDLED)})")
    if p.suffix == ".jsonl":
        return _read_jsonl(p)
    return _read_csv(p)


def bundled_trace(name: str) -> Trace:
    """A trace shipped with fleetwise: ``azure_conv``, ``azure_code`` or ``mooncake_conversation``."""
    if name not in BUNDLED:
        raise SpecError(f"unknown bundled trace {name!r} (known: {', '.join(BUNDLED)})")
    return load_trace(DATA_DIR / BUNDLED[name])


def synthetic_trace(rng: np.random.Generator, n: int, rate_per_s: float, input_tokens: float,
                    output_tokens: float, arrival: Literal["poisson", "gamma"] = "poisson", cv: float = 1.0,
                    length_cv: float = 0.0) -> Trace:
    """``n`` requests with Poisson (or Gamma, coefficient of variation ``cv``) inter-arrival times.

    Lengths are fixed at the means, or log-normal with coefficient of variation ``length_cv``.
    """
    if n < 1 or rate_per_s <= 0 or input_tokens < 1 or output_tokens < 1 or cv <= 0:
        raise SpecError(f"synthetic trace: n, rate, lengths and cv must be positive (got n={n}, rate={rate_per_s}, "
                        f"input={input_tokens}, output={output_tokens}, cv={cv})")
    mean_gap = 1.0 / rate_per_s
    if arrival == "poisson":
        gaps = rng.exponential(mean_gap, n)
    else:
        shape = 1.0 / cv**2
        gaps = rng.gamma(shape, mean_gap / shape, n)
    t = np.cumsum(gaps) - gaps[0]

    def lengths(mean: float) -> IntArray:
        if length_cv <= 0:
            return np.full(n, max(1, round(mean)), dtype=np.int64)
        sigma = math.sqrt(math.log1p(length_cv**2))
        x = rng.lognormal(math.log(mean) - sigma**2 / 2, sigma, n)
        return np.maximum(np.round(x), 1).astype(np.int64)

    return Trace(np.asarray(t, dtype=np.float64), lengths(input_tokens), lengths(output_tokens),
                 f"synthetic {arrival} {rate_per_s:g}/s")
