"""Unit constants and conversions. Values inside fleetwise are SI: bytes, seconds, FLOP/s, watts."""

from __future__ import annotations

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
GIB = 2.0**30
TERA = 1e12
PETA = 1e15
GBIT = 1e9 / 8.0  # bytes per gigabit
US = 1e-6
MS = 1e-3
HOUR = 3600.0
DAY = 86400.0

BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}
