"""Speculative decoding across edge and cloud; DiLoCo synchronisation arithmetic."""

from __future__ import annotations

import pytest

from fleetwise.errors import SpecError
from fleetwise.place.edge import break_even_rtt_s, expected_tokens, speculative_round
from fleetwise.place.training import diloco_bandwidth_for_share, diloco_sync_s


def test_expected_tokens_per_round() -> None:
    assert expected_tokens(0.8, 4) == pytest.approx((1 - 0.8**5) / 0.2)
    assert expected_tokens(0.0, 3) == 1.0
    with pytest.raises(SpecError, match="acceptance"):
        expected_tokens(1.0, 2)


def test_break_even_rtt_separates_paying_from_not_paying() -> None:
    draft, target = 0.004, 0.030  # a fast edge draft, a 30 ms cloud TPOT
    be, gamma = break_even_rtt_s(draft, target, target, 0.8)
    assert be > 0
    assert speculative_round(draft, target, target, be * 0.9, 0.8, gamma).pays
    assert not speculative_round(draft, target, target, be * 1.1, 0.8, gamma).pays
    # a draft slower than the target never pays, at any RTT
    assert break_even_rtt_s(0.040, target, target, 0.8)[0] == 0.0


def test_diloco_sync_and_the_bandwidth_it_needs() -> None:
    params, b, w, rtt = 8e9, 1.0, 2, 0.03
    bw = 1e9  # bytes/s
    assert diloco_sync_s(params, b, w, bw, rtt) == pytest.approx(params / bw + 2 * rtt)
    inner, h = 5.0, 100
    need = diloco_bandwidth_for_share(params, b, w, inner, h, rtt, 0.95)
    share = inner * h / (inner * h + diloco_sync_s(params, b, w, need, rtt))
    assert share == pytest.approx(0.95)
    assert diloco_bandwidth_for_share(params, b, w, 1e-6, 1, 1.0, 0.99) == float("inf")
