"""Stress the input boundary: N generated inputs, and not one exception outside ``FleetwiseError``.

Usage: ``python scripts/stress_inputs.py [N] [--seed S]`` (default 100,000 inputs, seed 0).

Inputs are mutations of real ones: bundled catalog YAML text with characters, anchors and aliases spliced
in; bundled specs and Hugging Face configs with one field set to a hostile value (negative, zero, huge,
NaN, infinite, a string, a list, a nested mapping, a 10,000-character string); training and serving plans,
power settings and traffic with random (often impossible) values through the library's checks and cost
models; and a share of whole command lines through ``fleetwise.cli.main.main``. Each input must either
succeed or raise a ``FleetwiseError`` whose message is at most 2,000 characters; the script prints the
count per kind and the first failures, and exits 1 if there was any.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fleetwise import api
from fleetwise.catalog.hf_import import model_from_hf_dict
from fleetwise.catalog.loader import BUNDLED_DIR, load_catalog, parse_spec, parse_yaml_text, validated
from fleetwise.catalog.types import PRECISIONS
from fleetwise.cli.main import main as cli_main
from fleetwise.energy.power import chip_power
from fleetwise.energy.training import PowerSettings, check_power_settings
from fleetwise.errors import FleetwiseError
from fleetwise.perf.inference import check_serving_plan, make_serving_setup
from fleetwise.perf.setup import check_precision
from fleetwise.plan import ServingPlan, TrainingPlan, default_global_batch
from fleetwise.search.evaluate import evaluate_plan
from fleetwise.search.serving import ServingWorkload, check_workload
from fleetwise.search.space import SearchSpace, check_chips, check_pinned

HF_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "hf"
MAX_MESSAGE = 2000
HOSTILE: list[Any] = [-1, 0, 1, 2, 3, 7, 10**6, 10**12, 10**30, -1e300, 1e300, math.nan, math.inf, -math.inf, 0.5,
                      "", "x", "1e3", "nan", "x" * 10_000, [], [1, 2], {}, {"a": {"b": 1}}, None, True, False]
SPLICES = ["&a ", "*a", "*b", "&b [*a, *a]", ": ", "- ", "[", "]", "{", "}", "'", '"', "\n", "  ", "\t", "#",
           "!!python/object:os.system", "!!binary", "1e400", "-0", "~", "? ", "|", ">", "%YAML 1.1\n", "\x00"]


class Inputs:
    """The seeds every generator mutates: bundled YAML texts and specs, HF configs, catalog ids."""

    def __init__(self) -> None:
        self.catalog = load_catalog([])
        self.texts: list[tuple[str, str]] = []  # (kind, text)
        for kind in ("accelerators", "systems", "fabrics", "models"):
            for p in sorted((BUNDLED_DIR / kind).glob("*.yaml")):
                self.texts.append((kind, p.read_text(encoding="utf-8")))
        self.specs = [(k, parse_yaml_text(t, k)) for k, t in self.texts]
        self.hf = [json.loads(p.read_text()) for p in sorted(HF_DIR.glob("*/config.json"))]
        self.models = ["gpt3-13b", "llama3-8b", "llama3-70b", "mixtral-8x7b", "deepseek-v3", "llama2-7b"]
        self.chips = ["nvidia_a100_80gb_sxm", "nvidia_h100_sxm", "huawei_ascend_910b", "huawei_ascend_910c",
                      "google_tpu_v5p", "nvidia_v100_sxm2_32gb"]
        self.training = {(m, h): api.training_setup(m, h, seq_len=2048 if m == "gpt3-13b" else 4096, chips=64,
                                                    catalog=self.catalog)
                         for m in self.models[:3] for h in self.chips[:3]}
        self.serving = {(m, h): make_serving_setup(self.catalog.model(m), self.catalog.accelerator(h),
                                                   self.catalog.default_system(h))
                        for m in self.models[:3] for h in self.chips[:3]}
        self.power = {h: chip_power(self.catalog.accelerator(h)) for h in self.chips}


def _pick(rng: np.random.Generator, seq: list[Any]) -> Any:
    return seq[int(rng.integers(len(seq)))]


def _number(rng: np.random.Generator) -> Any:
    """Mostly plausible integers, often hostile values."""
    if rng.random() < 0.6:
        return int(2 ** rng.integers(0, 12)) * int(_pick(rng, [1, 1, 1, 3, 5]))
    return _pick(rng, HOSTILE)


def gen_yaml(rng: np.random.Generator, inp: Inputs) -> None:
    kind, text = _pick(rng, inp.texts)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(text) + 1))
        cut = int(rng.integers(0, 3))
        text = text[:i] + _pick(rng, SPLICES) + text[i + cut:]
    data = parse_yaml_text(text, f"{kind}/fuzz.yaml")
    parse_spec(kind, data, f"{kind}/fuzz.yaml")


def _mutate(rng: np.random.Generator, data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    key = _pick(rng, sorted(out)) if out and rng.random() < 0.9 else f"extra_{int(rng.integers(9))}"
    value = out.get(key)
    if isinstance(value, dict) and value and rng.random() < 0.5:
        out[key] = _mutate(rng, value)
    else:
        out[key] = _pick(rng, HOSTILE)
    if rng.random() < 0.1:
        out.pop(_pick(rng, sorted(out)), None)
    return out


def gen_spec(rng: np.random.Generator, inp: Inputs) -> None:
    kind, data = _pick(rng, inp.specs)
    parse_spec(kind, _mutate(rng, data) if isinstance(data, dict) else data, f"{kind}/fuzz.yaml")


def gen_hf(rng: np.random.Generator, inp: Inputs) -> None:
    data = _pick(rng, inp.hf)
    for _ in range(int(rng.integers(1, 3))):
        data = _mutate(rng, data)
    model_from_hf_dict(data, Path("fuzz/config.json"))


def gen_training(rng: np.random.Generator, inp: Inputs) -> None:
    (model, hw), setup = _pick(rng, list(inp.training.items()))
    fields = {k: _number(rng) for k in ("tp", "pp", "dp", "cp", "ep", "micro_batch") if rng.random() < 0.5}
    chips = _number(rng)
    gbs = _number(rng) if rng.random() < 0.5 else None
    check_precision(setup.accel, _pick(rng, list(PRECISIONS)))
    check_chips(chips)
    default_global_batch(int(_pick(rng, [1, 2048, 4096, 131072])), chips)
    plan = validated(TrainingPlan, "plan", fields)
    job_gbs = gbs if isinstance(gbs, int) and not isinstance(gbs, bool) and gbs > 0 else 1024  # a validated job's
    check_pinned(SearchSpace(chips=chips, pinned=plan.model_dump(exclude_unset=True)), job_gbs)
    if rng.random() < 0.03:  # the whole cost model on a plan that passed the checks
        s = api.training_setup(model, hw, seq_len=setup.job.seq_len, chips=plan.chips, global_batch=gbs,
                               catalog=inp.catalog)
        evaluate_plan(s, plan)


def gen_serving(rng: np.random.Generator, inp: Inputs) -> None:
    _, s = _pick(rng, list(inp.serving.items()))
    fields = {k: _number(rng) for k in ("tp", "pp", "dp", "ep", "replicas", "max_batch") if rng.random() < 0.5}
    if rng.random() < 0.3:
        fields["weight_precision"] = _pick(rng, ["bf16", "fp8", "int4", "fp4", "fp3", 8])
    plan = validated(ServingPlan, "plan", fields)
    check_serving_plan(s, plan)
    floats = [float(x) if isinstance(x, int | float) and not isinstance(x, bool) else -1.0
              for x in (_number(rng) for _ in range(6))]
    chips = int(floats[5]) if math.isfinite(floats[5]) else -1
    w = ServingWorkload(floats[0], floats[1], floats[2] / 1e3, floats[3] / 1e3,
                        floats[4] if rng.random() < 0.5 else None, None if rng.random() < 0.5 else chips,
                        float(_pick(rng, [90.0, 99.0, 0.0, 101.0, math.nan])))
    check_workload(s, w)


def gen_power(rng: np.random.Generator, inp: Inputs) -> None:
    chip = _pick(rng, list(inp.power.values()))
    clock = float(_pick(rng, [1.0, 0.9, 0.5, 0.2, 0.0, -1.0, 2.0, math.nan]))
    cap = _pick(rng, [None, 1.0, 50.0, 100.0, 200.0, 300.0, 400.0, 700.0, 1e9, math.nan, -5.0, math.inf])
    check_power_settings(chip, PowerSettings(clock=clock, cap_w=cap))


CLI_BASES = [
    ["plan", "train", "--model", "gpt3-13b", "--hardware", "nvidia_a100_80gb_sxm", "--seq-len", "2048",
     "--chips", "64", "--tp", "8", "--pp", "1", "--mbs", "1", "--top", "1"],
    ["explain", "train", "--model", "gpt3-13b", "--hardware", "nvidia_a100_80gb_sxm", "--seq-len", "2048",
     "--tp", "8", "--pp", "1", "--dp", "8", "--global-batch", "512"],
    ["explain", "serve", "--model", "llama3-8b", "--hardware", "nvidia_a100_80gb_sxm", "--ttft-ms", "1000",
     "--tpot-ms", "100", "--input-tokens", "512", "--output-tokens", "128", "--tp", "1"],
    ["plan", "serve", "--model", "llama3-8b", "--hardware", "nvidia_a100_80gb_sxm", "--ttft-ms", "1000",
     "--tpot-ms", "100", "--input-tokens", "512", "--output-tokens", "128", "--rate", "2", "--no-confirm",
     "--top", "1"],
]
CLI_VALUES = ["0", "-1", "3", "1e12", "nan", "inf", "abc", "", "1e400", "2.5", "fp8", "x" * 500, "8", "1", "16"]


def gen_cli(rng: np.random.Generator, inp: Inputs) -> None:
    argv = list(_pick(rng, CLI_BASES))
    values = [i for i, a in enumerate(argv) if i > 0 and argv[i - 1].startswith("--") and not a.startswith("--")]
    for _ in range(int(rng.integers(1, 3))):
        argv[_pick(rng, values)] = _pick(rng, CLI_VALUES)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            code = cli_main(argv)
        except SystemExit as exc:  # argparse rejects with exit 2
            code = int(exc.code) if isinstance(exc.code, int) else 2
    if code not in (0, 2) or "Traceback" in err.getvalue():
        raise RuntimeError(f"exit {code}: {err.getvalue()[-300:]}")
    lines = [ln for ln in err.getvalue().splitlines() if "error:" in ln]
    if code == 2 and (len(lines) != 1 or len(lines[0]) > 300):
        raise RuntimeError(f"not one short error line: {err.getvalue()[-300:]}")
    if code == 2:
        raise CliRejected(lines[0])


class CliRejected(FleetwiseError):
    """A command line the CLI rejected cleanly (exit 2, one short line)."""


GENERATORS: dict[str, tuple[float, Callable[[np.random.Generator, Inputs], None]]] = {
    "yaml": (0.25, gen_yaml), "spec": (0.25, gen_spec), "hf": (0.15, gen_hf), "training": (0.15, gen_training),
    "serving": (0.12, gen_serving), "power": (0.075, gen_power), "cli": (0.005, gen_cli),
}


def run(n: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    inp = Inputs()
    names = list(GENERATORS)
    weights = np.array([GENERATORS[k][0] for k in names])
    kinds = rng.choice(len(names), size=n, p=weights / weights.sum())
    ok: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()
    for i, k in enumerate(kinds):
        name = names[int(k)]
        try:
            GENERATORS[name][1](rng, inp)
            ok[name] += 1
        except FleetwiseError as exc:
            if len(str(exc)) > MAX_MESSAGE:
                failures.append(f"{name}: {len(str(exc))}-char message")
            rejected[name] += 1
        except Exception:  # the point: anything else is a bug at the input boundary
            failures.append(f"{name}: {traceback.format_exc(limit=3)[-600:]}")
        if (i + 1) % 20_000 == 0:
            print(f"  {i + 1:,} inputs, {time.perf_counter() - t0:.0f} s, {len(failures)} failures", file=sys.stderr)
    total = time.perf_counter() - t0
    print(f"{n:,} generated inputs in {total:.1f} s (seed {seed}): {sum(ok.values()):,} accepted, "
          f"{sum(rejected.values()):,} rejected with FleetwiseError, {len(failures)} other exceptions")
    for name in names:
        print(f"  {name:<9} {ok[name] + rejected[name]:>7,} inputs  {ok[name]:>7,} accepted  "
              f"{rejected[name]:>7,} rejected")
    for f in failures[:10]:
        print("FAILURE", f)
    return 1 if failures else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sys.exit(run(a.n, a.seed))
