"""Property: for any valid plan, every emitted flag and value is in the framework's flag data (and every LWS
manifest validates). Pricing of nearest plans is stubbed here: this test is about what is written."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.catalog import load_catalog
from fleetwise.emit import check_emission, emit
from fleetwise.plan import ServingPlan, TrainingPlan
from fleetwise.study import Study

CAT = load_catalog([])
POW2 = st.sampled_from([1, 2, 4, 8])


@pytest.fixture(autouse=True)
def _no_pricing(monkeypatch: pytest.MonkeyPatch) -> None:
    for mod in ("megatron", "mindspeed_llm", "training"):
        monkeypatch.setattr(f"fleetwise.emit.{mod}.price", lambda ctx, p, precision=None: ("stub", None))
    monkeypatch.setattr("fleetwise.emit.serving.nearest_cost", lambda ctx, p: ("stub", None, p))


@st.composite
def training_plans(draw: Any) -> dict[str, Any]:
    tp, pp, cp = draw(POW2), draw(st.sampled_from([1, 2, 3, 4, 5])), draw(st.sampled_from([1, 2]))
    dp = draw(POW2)
    ep = draw(st.sampled_from([e for e in (1, 2, 4, 8) if (dp * cp) % e == 0]))
    return {"tp": tp, "pp": pp, "dp": dp, "cp": cp, "ep": ep, "micro_batch": draw(POW2),
            "vpp": draw(st.sampled_from([1, 2, 3])) if pp > 1 else 1,
            "recompute": draw(st.sampled_from(["none", "selective", "full"])),
            "recompute_layers_frac": draw(st.sampled_from([1.0, 0.5, 0.25])), "zero": draw(st.integers(0, 3)),
            "tp_comm_overlap": draw(st.booleans()) if tp > 1 else False, "ep_comm_overlap": draw(st.booleans()),
            "rank_order": draw(st.sampled_from(["tp-cp-dp-pp", "tp-cp-pp-dp"]))}


@settings(max_examples=40)
@given(plan=training_plans(), model=st.sampled_from(["llama3-8b", "mixtral-8x7b", "deepseek-v3", "mistral-7b-v0.1"]),
       ascend=st.booleans(), precision=st.sampled_from(["bf16", "fp16", "fp8"]), msrun=st.booleans())
def test_any_training_plan_emits_only_known_flags(plan: dict[str, Any], model: str, ascend: bool, precision: str,
                                                  msrun: bool) -> None:
    p = TrainingPlan(**plan)
    hw = "huawei_ascend_910b" if ascend else "nvidia_h100_sxm"
    s = Study("plan_train", {"model": model, "hardware": hw, "chips": p.chips, "seq_len": 4096,
                             "global_batch": 16 * p.dp * p.cp * p.micro_batch, "precision": precision},
              {"rows": [{"plan": p.model_dump(), "step_time_s": 1.0}]})
    target = "mindspeed-llm" if ascend else "megatron"
    e = emit(s, target, catalog=CAT, **({"launcher": "msrun" if msrun else "torchrun"} if ascend else {}))
    assert check_emission(e) == []


@st.composite
def serving_plans(draw: Any) -> dict[str, Any]:
    tp, dp = draw(POW2), draw(st.sampled_from([1, 2, 4]))
    return {"replicas": draw(st.integers(1, 4)), "tp": tp, "pp": draw(st.sampled_from([1, 2, 4])), "dp": dp,
            "ep": draw(st.sampled_from([e for e in (1, 2, 4, 8, 16, 32) if (tp * dp) % e == 0])),
            "max_batch": draw(st.sampled_from([1, 16, 256])), "token_budget": draw(st.sampled_from([2048, 8192])),
            "weight_precision": draw(st.sampled_from(["bf16", "fp16", "fp8", "int8", "int4", "fp4"])),
            "kv_precision": draw(st.sampled_from(["bf16", "fp16", "fp8", "int8", "int4"])),
            "prefill_replicas": draw(st.sampled_from([0, 0, 1, 2]))}


@settings(max_examples=40)
@given(plan=serving_plans(), model=st.sampled_from(["llama3-70b", "mixtral-8x7b", "deepseek-v3"]),
       ascend=st.booleans(), target=st.sampled_from(["engine", "sglang", "lws", "lws-sglang"]))
def test_any_serving_plan_emits_only_known_flags(plan: dict[str, Any], model: str, ascend: bool,
                                                 target: str) -> None:
    p = ServingPlan(**plan)
    hw = "huawei_ascend_910b" if ascend else "nvidia_h100_sxm"
    s = Study("plan_serve", {"model": model, "hardware": hw, "chips": p.chips},
              {"rows": [{"plan": p.model_dump(), "goodput_rps": 1.0}]})
    engine = "vllm-ascend" if ascend else "vllm"
    t, kw = {"engine": (engine, {}), "sglang": ("sglang", {}), "lws": ("lws", {}),
             "lws-sglang": ("lws", {"engine": "sglang"})}[target]
    e = emit(s, t, catalog=CAT, **kw)
    assert check_emission(e) == []
