from fleetwise.catalog import Catalog
from fleetwise.perf.model_math import attention_flops_per_token, gemm_flops_per_token, param_counts


def test_parameter_count_matches_published_recount_for_every_catalog_model(catalog: Catalog) -> None:
    checked = 0
    for m in catalog.models.values():
        if m.params_total is None:
            continue
        pc = param_counts(m)
        total = pc.total(m) - pc.mtp  # published totals exclude the multi-token-prediction module
        assert abs(total - m.params_total) / m.params_total < 1e-3, m.id
        if m.params_active is not None:
            assert abs(pc.active(m) - pc.mtp * 0 - m.params_active) / m.params_active < 1e-3, m.id
        checked += 1
    assert checked >= 40


def test_dense_gemm_flops_are_twice_the_non_embedding_parameters(catalog: Catalog) -> None:
    m = catalog.model("llama2-7b")
    pc = param_counts(m)
    weights = m.layers * pc.dense_layer + m.vocab * m.hidden  # layer weights (norms negligible) + head
    assert abs(gemm_flops_per_token(m) - 2 * weights) / (2 * weights) < 0.001


def test_causal_attention_counts_half_the_score_matrix(catalog: Catalog) -> None:
    m = catalog.model("gpt3-175b")
    full = attention_flops_per_token(m, 2048)
    assert attention_flops_per_token(m, 2048, causal=True) == full / 2
    # Megatron's formula: 4·s·h forward attention FLOPs per token per layer (Narayanan et al. 2021, Eq. 3)
    assert full == 4 * 2048 * m.hidden * m.layers


# (model, total B, non-embedding B) as the model cards print them (rounded to 0.1B or 0.01B)
CARD_COUNTS = [("qwen3-0.6b", 0.6, 0.44), ("qwen3-1.7b", 1.7, 1.4), ("qwen3-4b", 4.0, 3.6),
               ("qwen3-8b", 8.2, 6.95), ("qwen3-14b", 14.8, 13.2), ("qwen3-32b", 32.8, 31.2)]


def test_qwen3_configs_reproduce_the_parameter_counts_their_cards_publish(catalog: Catalog) -> None:
    for model_id, total_b, non_embedding_b in CARD_COUNTS:
        m = catalog.model(model_id)
        pc = param_counts(m)
        total = pc.total(m)
        embedding = m.vocab * m.hidden * (1 if m.tied_embeddings else 2)
        assert abs(total / 1e9 - total_b) <= 0.05, model_id
        assert abs((total - embedding) / 1e9 - non_embedding_b) <= 0.05, model_id


def test_gpt_oss_20b_reproduces_its_model_card(catalog: Catalog) -> None:
    m = catalog.model("gpt-oss-20b")
    pc = param_counts(m)
    assert abs(pc.total(m) / 1e9 - 20.91) < 0.01
    assert abs((pc.active(m) - m.vocab * m.hidden) / 1e9 - 3.61) < 0.01  # the card leaves the embedding out


def test_glm_4_5_air_reproduces_its_report(catalog: Catalog) -> None:
    m = catalog.model("glm-4.5-air")
    pc = param_counts(m)
    assert abs((pc.total(m) - pc.mtp) / 1e9 - 106) < 1.0  # the report's 106B leaves the MTP layer out
    assert abs((pc.active(m) - m.vocab * m.hidden * 2) / 1e9 - 12) < 0.5


def test_pangu_ultra_moe_reproduces_its_report(catalog: Catalog) -> None:
    m = catalog.model("pangu-ultra-moe-718b")
    pc = param_counts(m)
    assert abs((pc.total(m) - pc.mtp) / 1e9 - 718) < 2.0  # 718B total, the MTP layer left out
    embedding_and_head = m.vocab * m.hidden * 2
    assert abs((pc.active(m) - embedding_and_head) / 1e9 - 39) < 1.5  # 39B activated per token


# (model, total B, active B, whether the active figure counts the embedding and head, slack of each) as the
# reports state them: Kimi counts its 32B with the embedding and head (as DeepSeek-V3's 37B), GLM without
REPORTED_MOE = [("glm-4.5", 355.0, 32.0, False, 3.0, 1.0), ("kimi-k2", 1040.0, 32.0, True, 15.0, 1.0)]


def test_glm_4_5_and_kimi_k2_reproduce_their_reports(catalog: Catalog) -> None:
    for model_id, total_b, active_b, with_embedding, total_slack, active_slack in REPORTED_MOE:
        m = catalog.model(model_id)
        pc = param_counts(m)
        assert abs((pc.total(m) - pc.mtp) / 1e9 - total_b) < total_slack, model_id
        active = pc.active(m) - (0 if with_embedding else m.vocab * m.hidden * 2)
        assert abs(active / 1e9 - active_b) < active_slack, model_id


def test_qwen2_5_configs_reproduce_their_report(catalog: Catalog) -> None:
    for model_id, total_b, non_embedding_b in [("qwen2.5-14b", 14.7, 13.1), ("qwen2.5-32b", 32.5, 31.0)]:
        m = catalog.model(model_id)
        total = param_counts(m).total(m)
        assert abs(total / 1e9 - total_b) <= 0.3, model_id
        assert abs((total - 2 * m.vocab * m.hidden) / 1e9 - non_embedding_b) <= 0.3, model_id
