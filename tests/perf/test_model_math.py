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
