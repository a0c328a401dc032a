"""The model table: lookup by name and the cost of a call."""

from __future__ import annotations

import pytest

from m3code.providers import (
    DEFAULT_ANTHROPIC_BASE_URL,
    DEFAULT_OPENAI_BASE_URL,
    GENERIC_PROFILE,
    Usage,
    default_base_url,
    profile_for,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("MiniMax-M3", "MiniMax-M3"),
        ("minimax-m3", "MiniMax-M3"),
        ("minimax/MiniMax-M3", "MiniMax-M3"),
        ("MiniMax-M2.7", "MiniMax-M2.7"),
        ("MiniMax-M2.7-highspeed", "MiniMax-M2.7-highspeed"),
        ("MiniMax-M2.5-20260212", "MiniMax-M2.5"),
        ("MINIMAX-M2", "MiniMax-M2"),
    ],
)
def test_profile_for_is_case_insensitive_and_prefix_tolerant(model: str, expected: str) -> None:
    assert profile_for(model).name == expected


def test_unknown_model_gets_the_generic_profile() -> None:
    profile = profile_for("qwen3-coder-local")
    assert profile is GENERIC_PROFILE
    assert profile.context_window == 128_000
    assert not profile.pricing_known and not profile.supports_thinking
    assert profile.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == 0.0


def test_context_windows() -> None:
    assert profile_for("MiniMax-M3").context_window == 1_000_000
    for name in ("MiniMax-M2.7", "MiniMax-M2.5", "MiniMax-M2"):
        assert profile_for(name).context_window == 204_800
        assert profile_for(name).supports_thinking


def test_cost_below_the_long_context_tier() -> None:
    m3 = profile_for("MiniMax-M3")
    usage = Usage(input_tokens=100_000, output_tokens=10_000, cache_read_tokens=40_000)
    # 60K uncached at $0.30, 40K cached at $0.06, 10K out at $1.20 (per million).
    assert m3.cost(usage) == pytest.approx(0.018 + 0.0024 + 0.012)


def test_cost_above_512k_bills_the_whole_request_at_the_long_context_rate() -> None:
    m3 = profile_for("MiniMax-M3")
    tier = m3.long_context
    assert tier is not None
    at_edge = Usage(input_tokens=tier.threshold, output_tokens=1_000)
    above = Usage(input_tokens=tier.threshold + 1, output_tokens=1_000)
    assert m3.cost(at_edge) == pytest.approx((tier.threshold * 0.30 + 1_000 * 1.20) / 1e6)
    assert m3.cost(above) == pytest.approx(
        ((tier.threshold + 1) * tier.input_price + 1_000 * tier.output_price) / 1e6
    )
    assert tier.input_price > m3.input_price and tier.output_price > m3.output_price
    assert m3.cost(above) > 1.9 * m3.cost(at_edge)


def test_priority_tier_costs_more() -> None:
    m3 = profile_for("MiniMax-M3")
    usage = Usage(input_tokens=1000, output_tokens=1000)
    assert m3.cost(usage, "priority") == pytest.approx(1.5 * m3.cost(usage))


def test_m2_family_has_no_long_context_tier() -> None:
    m27 = profile_for("MiniMax-M2.7")
    assert m27.long_context is None
    assert m27.cost(Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == pytest.approx(0.30 + 1.20)


def test_default_base_urls() -> None:
    assert DEFAULT_OPENAI_BASE_URL == "https://api.minimax.io/v1"
    assert DEFAULT_ANTHROPIC_BASE_URL == "https://api.minimax.io/anthropic"
    assert default_base_url("openai", "china") == "https://api.minimaxi.com/v1"
