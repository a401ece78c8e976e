"""Property tests at the input boundary: loaders and the CLI either succeed or raise one bounded FleetwiseError.

Hypothesis generates YAML text, spec mappings, Hugging Face configs and command-line values; no generated
input may end in any other exception, a message over the bound, or a usage error longer than one line.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fleetwise.cli.main as cli_main
from fleetwise.catalog import Catalog
from fleetwise.catalog.hf_import import model_from_hf_dict
from fleetwise.catalog.loader import BUNDLED_DIR, MAX_YAML_NODES, parse_spec, parse_yaml_text
from fleetwise.cli.main import main
from fleetwise.errors import MAX_MESSAGE_CHARS, FleetwiseError

HOSTILE = st.one_of(
    st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
    st.none(), st.booleans(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                    max_size=2),
)
HF_BASE = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
           "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 128256,
           "max_position_embeddings": 8192, "hidden_act": "silu"}
A100 = "nvidia_a100_80gb_sxm"


def _bounded(exc: FleetwiseError) -> None:
    assert len(str(exc)) <= MAX_MESSAGE_CHARS


@settings(max_examples=60)
@given(st.text(alphabet=st.sampled_from(list("ab:-&*[]{}'\" \n\t#!|>?,0123456789.")), max_size=200))
def test_yaml_text_parses_or_raises_spec_error(text: str) -> None:
    try:
        parse_yaml_text(text, "fuzz.yaml")
    except FleetwiseError as exc:
        _bounded(exc)


def _leaves(value: Any) -> int:
    if isinstance(value, dict):
        return sum(_leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


@settings(max_examples=30)
@given(depth=st.integers(2, 12), width=st.integers(2, 12))
def test_nested_aliases_load_when_small_and_are_refused_before_expanding(depth: int, width: int) -> None:
    lines = ["l0: &l0 [lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    expanded = sum(2 * width**i for i in range(depth))  # leaf values once every alias is written out
    nodes, n = 1 + depth, 3  # values of any kind: the root, its keys, each list and its items
    for _ in range(depth):
        nodes, n = nodes + n, 1 + width * n
    if expanded > MAX_YAML_NODES:  # a "billion laughs": refused from the event stream, nothing built
        with pytest.raises(FleetwiseError, match="aliases expand to more than"):
            parse_yaml_text("\n".join(lines), "laughs.yaml")
    elif nodes <= MAX_YAML_NODES:
        doc = parse_yaml_text("\n".join(lines), "laughs.yaml")
        assert _leaves(doc) == expanded
        if depth > 2:  # each alias is its own copy: changing one leaves the others as they were
            doc["l2"][0].append("x")
            assert doc["l2"][1] == doc["l1"] and doc["l2"][0] != doc["l1"]


@cache
def _bundled_text(kind: str) -> str:
    return sorted((BUNDLED_DIR / kind).glob("*.yaml"))[0].read_text()


def _bundled(kind: str) -> dict[str, Any]:
    return dict(parse_yaml_text(_bundled_text(kind), kind))


@settings(max_examples=60)
@given(kind=st.sampled_from(["accelerators", "systems", "fabrics", "models"]), key=st.text(max_size=20),
       pick=st.integers(0, 1000), value=HOSTILE)
def test_a_spec_with_one_hostile_field_loads_or_raises_spec_error(kind: str, key: str, pick: int, value: Any) -> None:
    data = _bundled(kind)
    keys = sorted(data)
    data[keys[pick % len(keys)] if pick % 3 else key] = value
    try:
        parse_spec(kind, data, f"{kind}/fuzz.yaml")
    except FleetwiseError as exc:
        _bounded(exc)


@settings(max_examples=60)
@given(st.dictionaries(st.sampled_from(sorted(HF_BASE) + ["head_dim", "tie_word_embeddings", "sliding_window",
                                                          "num_local_experts", "num_experts_per_tok"]),
                       HOSTILE, max_size=3))
def test_hf_config_with_hostile_fields_imports_or_raises_spec_error(override: dict[str, Any]) -> None:
    try:
        m = model_from_hf_dict({**HF_BASE, **override}, Path("fuzz/config.json"))
    except FleetwiseError as exc:
        _bounded(exc)
    else:
        assert m.heads >= 1 and m.hidden >= 1 and m.heads % m.n_kv_heads == 0


CLI_VALUE = st.one_of(st.integers(-3, 300).map(str), st.sampled_from(["1e12", "nan", "inf", "2.5", "", "x" * 400,
                                                                      "1e400", "-0", "0x10", "٣"]))


@pytest.fixture()
def cached_catalog(catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_main, "load_catalog", lambda extra=None: catalog)


def _clean_exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 2
    _, err = capsys.readouterr()
    assert code in (0, 2), err
    if code == 2:
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        assert len(lines) == 1 and len(lines[0]) <= 300, err


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tp=CLI_VALUE, pp=CLI_VALUE, mbs=CLI_VALUE, gbs=CLI_VALUE)
def test_explain_train_with_any_numbers_exits_0_or_2(cached_catalog: None, capsys: pytest.CaptureFixture[str],
                                                     tp: str, pp: str, mbs: str, gbs: str) -> None:
    _clean_exit(["explain", "train", "--model", "gpt3-13b", "--hardware", A100, "--seq-len", "2048", "--tp", tp,
                 "--pp", pp, "--dp", "8", "--mbs", mbs, "--global-batch", gbs, "--json"], capsys)


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tp=CLI_VALUE, batch=CLI_VALUE, tokens=CLI_VALUE, weights=st.sampled_from(["bf16", "fp8", "int4", "fp3"]))
def test_explain_serve_with_any_numbers_exits_0_or_2(cached_catalog: None, capsys: pytest.CaptureFixture[str],
                                                     tp: str, batch: str, tokens: str, weights: str) -> None:
    _clean_exit(["explain", "serve", "--model", "llama3-8b", "--hardware", A100, "--ttft-ms", "1000", "--tpot-ms",
                 "100", "--input-tokens", tokens, "--output-tokens", "128", "--tp", tp, "--max-batch", batch,
                 "--weights", weights, "--json"], capsys)


def test_huge_numbers_in_json_configs_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "big" / "config.json"
    p.parent.mkdir()
    p.write_text(json.dumps({**HF_BASE, "hidden_size": 10**40, "vocab_size": math.inf}, allow_nan=True))
    with pytest.raises(FleetwiseError, match="hidden|vocab"):
        from fleetwise.catalog.hf_import import model_from_hf_config

        model_from_hf_config(p)
