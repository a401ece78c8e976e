"""Launch files from plans, held against the frameworks' own argument data (and the LWS CRD schema).

Every emitted *file* is re-parsed here (not the emitter's own command list) and each flag and value is checked
against the pinned flag data, so a flag the data does not vouch for fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwise import api
from fleetwise.catalog import Catalog, load_catalog
from fleetwise.cli.main import main
from fleetwise.emit import TARGETS, check_emission
from fleetwise.emit import emit as _emit
from fleetwise.emit.flags import check_command, load_flags, split_script
from fleetwise.emit.lws import validate_manifest
from fleetwise.emit.training import balanced_split, first_last_split, node_layout
from fleetwise.errors import SpecError
from fleetwise.plan import ServingPlan, TrainingPlan
from fleetwise.study import Study

PROGRAM = {"megatron": "pretrain_gpt.py", "mindspeed-llm": "pretrain_gpt.py", "vllm": "serve",
           "vllm-ascend": "serve", "sglang": "sglang.launch_server"}


_CAT: list[Catalog] = []


def emit(study: Study, target: str, **kw: Any) -> Any:
    """``fleetwise.emit.emit`` with the bundled catalog loaded once for the module."""
    if not _CAT:
        _CAT.append(load_catalog([]))
    kw.setdefault("catalog", _CAT[0])
    return _emit(study, target, **kw)


def train_study(model: str, hw: str, plan: dict[str, Any], **inputs: Any) -> Study:
    p = TrainingPlan(**plan)
    row = {"plan": p.model_dump(), "chips": p.chips, "step_time_s": 2.0, "tokens_per_s_per_chip": 1000.0}
    return Study("plan_train", {"model": model, "hardware": hw, "chips": p.chips, "seq_len": 4096,
                                "global_batch": inputs.pop("global_batch", 8 * p.dp * p.cp), "precision": "bf16",
                                **inputs}, {"rows": [row]})


def serve_study(model: str, hw: str, plans: list[dict[str, Any]]) -> Study:
    rows = []
    for k, d in enumerate(plans):
        p = ServingPlan(**d)
        rows.append({"plan": p.model_dump(), "chips": p.chips, "goodput_rps": 10.0 - k, "ttft_s": 0.5, "tpot_s": 0.05})
    return Study("plan_serve", {"model": model, "hardware": hw, "chips": rows[0]["chips"], "input_tokens": 1000,
                                "output_tokens": 200, "ttft_ms": 2000, "tpot_ms": 100}, {"rows": rows})


def file_problems(e: Any, target: str) -> list[str]:
    """Re-parse every emitted script / manifest and check it against the flag data."""
    problems: list[str] = []
    for name, text in e.files.items():
        if name.endswith(".sh"):
            for argv in split_script(text):
                problems += check_command(argv, load_flags(target), PROGRAM[target], name)
        else:
            for doc in yaml.safe_load_all(text):
                problems += validate_manifest(doc)
    return problems


@pytest.fixture(scope="module")
def live_train(catalog: Catalog) -> Study:
    """A real plan_train study from the search (small, so it is fast)."""
    return api.run_study("plan_train", {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 2, "top": 2,
                                        "seq_len": 2048}, catalog=catalog)


@pytest.fixture(scope="module")
def live_serve(catalog: Catalog) -> dict[str, Study]:
    """Real plan_serve studies built from fleetwise.api.plan_serving (one GPU, one Ascend)."""
    out = {}
    for hw in ("nvidia_h100_sxm", "huawei_ascend_910b"):
        r = api.plan_serving("gpt3-1.3b", hw, ttft_ms=2000, tpot_ms=100, input_tokens=1000, output_tokens=200,
                             chips=2, confirm=False, top=2, catalog=catalog)
        rows = [{"plan": c.plan.model_dump(), "chips": c.plan.chips, "goodput_rps": round(c.goodput_rps, 4),
                 "ttft_s": round(c.ttft_s, 5), "tpot_s": round(c.tpot_s, 6)} for c in r.best]
        out[hw] = Study("plan_serve", {"model": "gpt3-1.3b", "hardware": hw, "chips": 2, "input_tokens": 1000,
                                       "output_tokens": 200, "ttft_ms": 2000, "tpot_ms": 100}, {"rows": rows})
    return out


def test_checker_rejects_unknown_flags_and_values() -> None:
    meg = load_flags("megatron")
    ok = ["torchrun", "--nnodes", "1", "pretrain_gpt.py", "--tensor-model-parallel-size", "2", "--bf16"]
    assert check_command(ok, meg, "pretrain_gpt.py") == []
    assert check_command(ok + ["--tensor-parallel", "2"], meg, "pretrain_gpt.py")  # vLLM-style name
    assert check_command(ok + ["--recompute-granularity", "layer"], meg, "pretrain_gpt.py")  # not a choice
    assert check_command(ok + ["--bf16=1"], meg, "pretrain_gpt.py")  # store_true takes no value
    assert check_command(["torchrun", "--nodes", "1", "pretrain_gpt.py"], meg, "pretrain_gpt.py")  # launcher
    v = load_flags("vllm")
    bad_json = ["vllm", "serve", "m", "--kv-transfer-config", '{"kv_connector":"Nope","kv_role":"kv_both"}']
    assert check_command(bad_json, v, "serve")
    assert check_command(["vllm", "serve", "m", "--gpu-memory-utilization", "1.5"], v, "serve")


def test_flag_data_is_pinned_to_sources() -> None:
    for target in PROGRAM:
        fs = load_flags(target)
        assert len(fs.commit) == 40 and fs.flags
        assert all("source" in f for f in fs.flags.values()), target
    assert "--num-layer-list" in load_flags("mindspeed-llm").flags  # MindSpeed-LLM's own flag
    assert "--num-layer-list" not in load_flags("megatron").flags
    assert "ascend" in load_flags("vllm-ascend").flags["--quantization"]["choices"]
    assert "ascend" not in load_flags("vllm").flags["--quantization"]["choices"]


def test_megatron_live_plan_and_file_flags(live_train: Study) -> None:
    for row in range(len(live_train.rows)):
        e = emit(live_train, "megatron", row=row)
        assert file_problems(e, "megatron") == []
        text = e.files["train_megatron.sh"]
        p = TrainingPlan(**live_train.rows[row]["plan"])
        assert f"--tensor-model-parallel-size {p.tp}" in text and f"--micro-batch-size {p.micro_batch}" in text
        assert f"--global-batch-size {live_train.inputs['global_batch']}" in text


def test_megatron_expresses_every_plan_setting() -> None:
    s = train_study("llama3-8b", "nvidia_h100_sxm", {"tp": 4, "pp": 2, "dp": 4, "cp": 2, "micro_batch": 2,
                                                      "vpp": 2, "recompute": "full", "recompute_layers_frac": 0.5,
                                                      "zero": 3, "tp_comm_overlap": True,
                                                      "rank_order": "tp-cp-pp-dp"}, precision="fp8")
    e = emit(s, "megatron")
    assert file_problems(e, "megatron") == [] and not e.adjustments
    assert 'CUDA_DEVICE_MAX_CONNECTIONS="32"' in e.files["train_megatron.sh"]  # custom FSDP needs > 1
    a = " ".join(e.commands[0].argv)
    for want in ("--context-parallel-size 2", "--num-layers-per-virtual-pipeline-stage 8", "--sequence-parallel",
                 "--tp-comm-overlap", "--recompute-method block --recompute-num-layers 4",
                 "--use-distributed-optimizer --use-custom-fsdp --data-parallel-sharding-strategy optim_grads_params "
                 "--no-gradient-accumulation-fusion", "--fp8-format hybrid",
                 "--use-tp-pp-dp-mapping", "--nnodes 8", "--nproc-per-node 8"):
        assert want in a, want


def test_equal_processes_per_node() -> None:
    assert node_layout(16, 8) == (2, 8) and node_layout(12, 8) == (2, 6) and node_layout(4, 8) == (1, 4)
    assert node_layout(13, 8) == (13, 1) and node_layout(24, 16) == (2, 12)
    e = emit(train_study("llama3-8b", "nvidia_h100_sxm", {"tp": 2, "pp": 3, "dp": 2}), "megatron")  # 12 chips
    a = e.commands[0].argv
    assert a[a.index("--nnodes") + 1] == "2" and a[a.index("--nproc-per-node") + 1] == "6"


def test_model_features_without_a_flag_are_said_not_dropped() -> None:
    e = emit(train_study("mistral-7b-v0.1", "nvidia_h100_sxm", {"tp": 2, "dp": 4}), "megatron")
    assert any("sliding-window attention (4096 tokens)" in n for n in e.notes)
    assert "sliding-window" in e.files["train_megatron.sh"]


def test_uneven_pipeline_splits() -> None:
    assert first_last_split(61, 8) == (7, 8, 6) or max(first_last_split(61, 8) or (99,)) == 8
    first, mid, last = first_last_split(61, 8) or (0, 0, 0)
    assert first + 6 * mid + last == 61 and max(first, mid, last) == 8
    assert sum(balanced_split(61, 8)) == 61 and max(balanced_split(61, 8)) - min(balanced_split(61, 8)) == 1
    s = train_study("llama3-8b", "nvidia_h100_sxm", {"tp": 2, "pp": 3, "dp": 2})  # 32 layers over 3 stages
    e = emit(s, "megatron")
    a = e.commands[0].argv
    f = int(a[a.index("--decoder-first-pipeline-num-layers") + 1])
    last = int(a[a.index("--decoder-last-pipeline-num-layers") + 1])
    assert f + last + (32 - f - last) == 32 and max(f, last, 32 - f - last) == 11
    iv = emit(train_study("llama3-8b", "nvidia_h100_sxm", {"tp": 2, "pp": 3, "dp": 2, "vpp": 2}), "megatron")
    c = iv.commands[0].argv  # core_v0.12.1 interleaves an uneven split when every stage holds a multiple of vpp
    assert not iv.adjustments and c[c.index("--num-virtual-stages-per-pipeline-rank") + 1] == "2"
    f2, l2 = (int(c[c.index(k) + 1]) for k in ("--decoder-first-pipeline-num-layers",
                                                "--decoder-last-pipeline-num-layers"))
    assert f2 % 2 == 0 and l2 % 2 == 0 and (32 - f2 - l2) % 2 == 0
    assert "--num-layers-per-virtual-pipeline-stage" not in c
    assert file_problems(iv, "megatron") == []
    ms = emit(train_study("llama3-8b", "huawei_ascend_910b", {"tp": 2, "pp": 3, "dp": 2}), "mindspeed-llm")
    b = ms.commands[0].argv
    assert b[b.index("--num-layer-list") + 1] == "10,11,11" or sorted(map(int, b[b.index("--num-layer-list") + 1]
                                                                         .split(","))) == [10, 11, 11]


def test_nearest_plan_is_priced_with_explain_training(catalog: Catalog) -> None:
    # interleaving with an uneven split: neither framework runs it; the nearest plan (vpp 1) is priced
    s = api.run_study("explain_train", {"model": "llama3-8b", "hardware": "huawei_ascend_910b",
                                        "plan": {"tp": 2, "pp": 3, "dp": 1, "vpp": 2}, "global_batch": 18},
                      catalog=catalog)
    e = emit(s, "mindspeed-llm", catalog=catalog)
    assert [a.field for a in e.adjustments] == ["vpp"] and e.plan["vpp"] == 1
    m = e.adjustments[0].metrics or {}
    assert m["plan"] == s.rows[0]["step_time_s"] and m["nearest"] > 0 and m["nearest"] != m["plan"]
    ref = api.explain_training("llama3-8b", "huawei_ascend_910b", TrainingPlan(tp=2, pp=3, dp=1, vpp=1),
                               global_batch=18, catalog=catalog)
    assert m["nearest"] == round(ref.step_time_s, 6)  # priced exactly as fleetwise.api.explain_training
    assert "step time" in (e.adjustments[0].cost or "") and "cannot express vpp" in e.files["train_mindspeed_llm.sh"]
    assert "--num-layers-per-virtual-pipeline-stage" not in e.commands[0].argv
    assert file_problems(e, "mindspeed-llm") == []


def test_moe_overlap_megatron_cannot_mindspeed_can() -> None:
    plan = {"tp": 2, "pp": 2, "dp": 4, "ep": 4, "ep_comm_overlap": True}
    g = emit(train_study("mixtral-8x7b", "nvidia_h100_sxm", plan), "megatron")
    assert [a.field for a in g.adjustments] == ["ep_comm_overlap"] and g.plan["ep_comm_overlap"] is False
    assert "--expert-model-parallel-size" in g.commands[0].argv and file_problems(g, "megatron") == []
    n = emit(train_study("mixtral-8x7b", "huawei_ascend_910b", plan), "mindspeed-llm")
    assert not n.adjustments and "--moe-alltoall-overlap-comm" in n.commands[0].argv
    assert file_problems(n, "mindspeed-llm") == []


def test_mindspeed_msrun_launcher() -> None:
    e = emit(train_study("llama3-8b", "huawei_ascend_910b", {"tp": 2, "pp": 2, "dp": 4}), "mindspeed-llm",
             launcher="msrun")
    a = e.commands[0].argv
    assert a[0] == "msrun" and a[a.index("--worker_num") + 1] == "16" and a[a.index("--local_worker_num") + 1] == "8"
    assert "--ai-framework" in a and file_problems(e, "mindspeed-llm") == []
    assert check_command(["msrun", "--nproc-per-node", "8", "pretrain_gpt.py"], load_flags("mindspeed-llm"),
                         "pretrain_gpt.py")  # a torchrun flag is not an msrun flag
    with pytest.raises(SpecError, match="does not apply"):
        emit(train_study("llama3-8b", "nvidia_h100_sxm", {"tp": 2}), "megatron", launcher="msrun")


def test_fp8_on_a_chip_without_fp8_runs_bf16() -> None:
    e = emit(train_study("llama3-8b", "huawei_ascend_910b", {"tp": 2, "pp": 1, "dp": 4}, precision="fp8"),
             "mindspeed-llm")
    assert [a.field for a in e.adjustments] == ["precision"] and "--fp8-format" not in e.commands[0].argv
    assert "--bf16" in e.commands[0].argv


def test_serving_targets_on_live_studies(live_serve: dict[str, Study]) -> None:
    for hw, targets in (("nvidia_h100_sxm", ("vllm", "sglang", "lws")),
                        ("huawei_ascend_910b", ("vllm-ascend", "sglang", "lws"))):
        s = live_serve[hw]
        for target in targets:
            for row in range(len(s.rows)):
                e = emit(s, target, row=row)
                key = {"lws": "vllm-ascend" if "ascend" in hw else "vllm"}.get(target, target)
                assert file_problems(e, key) == [], (hw, target, row)
                assert check_emission(e) == []


def test_vllm_disaggregated_ep_and_multinode() -> None:
    s = serve_study("mixtral-8x7b", "nvidia_h100_sxm", [
        {"replicas": 2, "tp": 4, "dp": 4, "ep": 16, "max_batch": 64, "prefill_replicas": 1, "kv_precision": "fp8",
         "weight_precision": "fp8"},
        {"replicas": 2, "tp": 4, "dp": 4, "ep": 8, "max_batch": 64}])
    e = emit(s, "vllm")
    assert sorted(e.files) == ["decode_vllm.sh", "prefill_vllm.sh"] and not e.adjustments
    a = e.commands[0].argv
    assert "--enable-expert-parallel" in a and "--distributed-executor-backend" in a
    assert json.loads(a[a.index("--kv-transfer-config") + 1])["kv_connector"] == "NixlConnector"
    assert file_problems(e, "vllm") == []
    near = emit(s, "vllm", row=1)  # ep 8 of a 16-rank engine: vLLM's EP is all tp*dp ranks
    assert [x.field for x in near.adjustments] == ["ep"] and near.plan["ep"] == 16
    assert near.adjustments[0].metrics is None or near.adjustments[0].metrics["row"] == 0
    lws = emit(s, "lws")
    docs = list(yaml.safe_load_all(lws.files["lws.yaml"]))
    assert [d["metadata"]["name"] for d in docs] == ["mixtral-8x7b-prefill", "mixtral-8x7b-decode"]
    t = docs[1]["spec"]["leaderWorkerTemplate"]
    assert t["size"] == 2 and docs[1]["spec"]["replicas"] == 2
    assert t["workerTemplate"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 8}
    leader = " ".join(t["leaderTemplate"]["spec"]["containers"][0]["args"][0].replace("\\\n", " ").split())
    assert leader.startswith("ray start --head --port 6379 && vllm serve")
    assert "$(LWS_LEADER_ADDRESS):6379" in t["workerTemplate"]["spec"]["containers"][0]["args"][0]
    assert all(validate_manifest(d) == [] for d in docs)


def test_ascend_serving_quantisation_and_pd() -> None:
    s = serve_study("llama3-70b", "huawei_ascend_910b", [
        {"replicas": 1, "tp": 4, "pp": 4, "max_batch": 128, "weight_precision": "int8", "kv_precision": "int8",
         "prefill_replicas": 1},
        {"replicas": 1, "tp": 4, "pp": 4, "max_batch": 128, "weight_precision": "bf16", "kv_precision": "int8"},
        {"replicas": 1, "tp": 4, "pp": 4, "max_batch": 128, "weight_precision": "bf16", "kv_precision": "bf16"}])
    va = emit(s, "vllm-ascend")
    a = va.commands[0].argv
    assert a[a.index("--quantization") + 1] == "ascend" and not va.adjustments
    assert json.loads(a[a.index("--kv-transfer-config") + 1])["kv_connector"] == "MooncakeConnectorV1"
    near = emit(s, "vllm-ascend", row=1)  # int8 KV without ModelSlim weights: nearest bf16 KV, priced by row 2
    assert near.adjustments[0].field == "kv_precision" and (near.adjustments[0].metrics or {})["row"] == 2
    sg = emit(s, "sglang")
    b = sg.commands[0].argv
    assert ["--device", "npu"] == b[b.index("--device"):b.index("--device") + 2]
    assert b[b.index("--disaggregation-transfer-backend") + 1] == "ascend" and "--nnodes" in b
    assert [x.field for x in sg.adjustments] == ["kv_precision"]  # SGLang has no int8 KV cache
    lws = emit(s, "lws", engine="sglang")
    d = list(yaml.safe_load_all(lws.files["lws.yaml"]))[0]
    c = d["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"huawei.com/Ascend910": 8} and "$(LWS_WORKER_INDEX)" in c["args"][0]
    for e, key in ((va, "vllm-ascend"), (near, "vllm-ascend"), (sg, "sglang"), (lws, "sglang")):
        assert file_problems(e, key) == []


def test_lws_schema_catches_bad_manifests() -> None:
    e = emit(serve_study("llama3-8b", "nvidia_h100_sxm", [{"replicas": 3, "tp": 2}]), "lws")
    doc = next(yaml.safe_load_all(e.files["lws.yaml"]))
    assert validate_manifest(doc) == [] and doc["spec"]["replicas"] == 3
    bad = json.loads(json.dumps(doc))
    bad["spec"]["leaderWorkerTemplate"]["groupSize"] = 2  # not a CRD field
    assert any("groupSize" in p for p in validate_manifest(bad))
    bad = json.loads(json.dumps(doc))
    bad["spec"]["leaderWorkerTemplate"]["size"] = "two"
    assert validate_manifest(bad)
    bad = json.loads(json.dumps(doc))
    del bad["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"]
    assert validate_manifest(bad)  # a pod template needs containers


def test_wrong_target_or_study_is_one_clear_error(live_train: Study) -> None:
    s = serve_study("llama3-8b", "huawei_ascend_910b", [{"tp": 2}])
    with pytest.raises(SpecError, match="vllm-ascend"):
        emit(s, "vllm")
    with pytest.raises(SpecError, match="plan_serve"):
        emit(live_train, "sglang")
    with pytest.raises(SpecError, match="plan_train or explain_train"):
        emit(s, "megatron")
    with pytest.raises(SpecError, match="--row must be in 0..1"):
        emit(live_train, "megatron", row=5)
    with pytest.raises(SpecError, match="--target must be one of"):
        emit(s, "trtllm")
    with pytest.raises(SpecError, match="does not apply"):
        emit(live_train, "megatron", engine="vllm")
    assert set(TARGETS) == {"megatron", "mindspeed-llm", "vllm", "vllm-ascend", "sglang", "lws"}


def test_cli_emit_writes_files(tmp_path: Path, live_train: Study, capsys: pytest.CaptureFixture[str]) -> None:
    plan = live_train.save(tmp_path / "study.json")
    assert main(["emit", "--plan", str(plan), "--target", "megatron", "--out", str(tmp_path / "out"), "--json"]) == 0
    script = tmp_path / "out" / "train_megatron.sh"
    assert script.is_file() and script.stat().st_mode & 0o111
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "megatron" and out["written"] == [str(script)]
    assert main(["emit", "--plan", str(tmp_path / "none.json"), "--target", "megatron"]) == 2
    assert "cannot read the study file" in capsys.readouterr().err


def test_cli_targets_are_the_emitters_targets() -> None:
    from fleetwise.cli.emit import TARGETS as CLI_TARGETS
    from fleetwise.emit import TARGETS

    assert CLI_TARGETS == TARGETS
