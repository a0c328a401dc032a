"""The one table of model facts: context windows, output limits, prices, thinking support, base URLs.

Prices are USD per million tokens for MiniMax's pay-as-you-go Standard service. Where a figure is not
published (or sources disagree) the value below says so in a comment; keep every such literal here.
"""

from __future__ import annotations

from dataclasses import dataclass

from m3code.providers.types import ApiFormat, Usage

# Global endpoints; the China platform is api.minimaxi.com with the same paths.
DEFAULT_OPENAI_BASE_URL = "https://api.minimax.io/v1"
DEFAULT_ANTHROPIC_BASE_URL = "https://api.minimax.io/anthropic"
CHINA_OPENAI_BASE_URL = "https://api.minimaxi.com/v1"
CHINA_ANTHROPIC_BASE_URL = "https://api.minimaxi.com/anthropic"

_BASE_URLS: dict[tuple[ApiFormat, str], str] = {
    ("openai", "global"): DEFAULT_OPENAI_BASE_URL,
    ("anthropic", "global"): DEFAULT_ANTHROPIC_BASE_URL,
    ("openai", "china"): CHINA_OPENAI_BASE_URL,
    ("anthropic", "china"): CHINA_ANTHROPIC_BASE_URL,
}


def default_base_url(api_format: ApiFormat, region: str = "global") -> str:
    """MiniMax's base URL for a wire format and region ("global" or "china")."""
    return _BASE_URLS[(api_format, region)]


@dataclass(frozen=True)
class LongContextTier:
    """Prices that apply to the whole request once its input exceeds `threshold` tokens."""

    threshold: int
    input_price: float
    output_price: float
    cache_read_price: float
    cache_write_price: float


@dataclass(frozen=True)
class ModelProfile:
    name: str
    context_window: int
    max_output_tokens: int
    input_price: float
    output_price: float
    cache_read_price: float
    cache_write_price: float
    long_context: LongContextTier | None = None
    # Whether the API takes `thinking: {"type": ...}` for this model.
    supports_thinking: bool = False
    # MiniMax's OpenAI API moves reasoning out of <think> tags into `reasoning_details` when asked.
    reasoning_split: bool = False
    # False for models we know nothing about: their cost is reported as 0 and should read "unknown".
    pricing_known: bool = True
    # Price factor for `service_tier="priority"`.
    priority_multiplier: float = 1.0
    # Whether the model takes image parts. Where not, adapters send a text note in place of each image.
    supports_images: bool = True

    def cost(self, usage: Usage, service_tier: str | None = None) -> float:
        """USD for one call.

        `usage.input_tokens` counts the whole prompt; cache reads and writes are the parts of it billed
        at their own prices, the rest at the input price. The long-context tier is chosen by the
        whole prompt size and then applies to every token of the request.
        """
        prices = (self.input_price, self.output_price, self.cache_read_price, self.cache_write_price)
        tier = self.long_context
        if tier is not None and usage.input_tokens > tier.threshold:
            prices = (tier.input_price, tier.output_price, tier.cache_read_price, tier.cache_write_price)
        inp, out, c_read, c_write = prices
        uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
        total = (
            uncached * inp
            + usage.cache_read_tokens * c_read
            + usage.cache_write_tokens * c_write
            + usage.output_tokens * out
        ) / 1_000_000
        if service_tier == "priority":
            total *= self.priority_multiplier
        return total


def _minimax(
    name: str,
    *,
    context_window: int,
    input_price: float,
    output_price: float,
    cache_read_price: float,
    # MiniMax lists $0.375/M cache writes for the M2.x family.
    cache_write_price: float = 0.375,
    # Output cap: 131,072 as listed for M2.5 and M3 by resellers; not on MiniMax's own price page.
    max_output_tokens: int = 131_072,
    long_context: LongContextTier | None = None,
    priority_multiplier: float = 1.0,
    # The M2.x family is text-only; M3 is a vision-language model.
    supports_images: bool = False,
) -> ModelProfile:
    return ModelProfile(
        name=name,
        context_window=context_window,
        max_output_tokens=max_output_tokens,
        input_price=input_price,
        output_price=output_price,
        cache_read_price=cache_read_price,
        cache_write_price=cache_write_price,
        long_context=long_context,
        supports_thinking=True,
        reasoning_split=True,
        priority_multiplier=priority_multiplier,
        supports_images=supports_images,
    )


_M2_CONTEXT = 204_800

PROFILES: tuple[ModelProfile, ...] = (
    _minimax(
        "MiniMax-M3",
        context_window=1_000_000,
        input_price=0.30,
        output_price=1.20,
        cache_read_price=0.06,
        # Cache-write price for M3 is not published; assumed equal to the M2.x family's.
        cache_write_price=0.375,
        long_context=LongContextTier(
            # "512K" is 524,288 tokens in the published tier boundaries.
            threshold=524_288,
            # Sources disagree (2x the active rate vs 2x the pre-discount list rate); we take the
            # newer: 2x the active Standard rate. Cache write doubled by assumption.
            input_price=0.60,
            output_price=2.40,
            cache_read_price=0.12,
            cache_write_price=0.75,
        ),
        priority_multiplier=1.5,
        supports_images=True,
    ),
    _minimax(
        "MiniMax-M2.7-highspeed",
        context_window=_M2_CONTEXT,
        input_price=0.60,
        output_price=2.40,
        cache_read_price=0.06,
    ),
    _minimax(
        "MiniMax-M2.7", context_window=_M2_CONTEXT, input_price=0.30, output_price=1.20, cache_read_price=0.06
    ),
    _minimax(
        "MiniMax-M2.5-highspeed",
        context_window=_M2_CONTEXT,
        input_price=0.60,
        output_price=2.40,
        cache_read_price=0.03,
    ),
    _minimax(
        "MiniMax-M2.5", context_window=_M2_CONTEXT, input_price=0.30, output_price=1.20, cache_read_price=0.03
    ),
    # M2's cache prices are not published; assumed equal to M2.5's.
    _minimax(
        "MiniMax-M2", context_window=_M2_CONTEXT, input_price=0.30, output_price=1.20, cache_read_price=0.03
    ),
)

# For any model not in the table (a local runtime under another name, vLLM, SGLang...): conservative
# limits that every server accepts, and no price. Images are sent: a text-only server says so in its error.
GENERIC_PROFILE = ModelProfile(
    name="generic",
    context_window=128_000,
    max_output_tokens=8_192,
    input_price=0.0,
    output_price=0.0,
    cache_read_price=0.0,
    cache_write_price=0.0,
    pricing_known=False,
)

# Longest name first, so "MiniMax-M2.7" wins over "MiniMax-M2".
_BY_PREFIX = sorted(PROFILES, key=lambda p: len(p.name), reverse=True)


def profile_for(model: str) -> ModelProfile:
    """The profile for a model name: case-insensitive, ignoring a "vendor/" path and any suffix
    after a known name (dates, "-preview"...). Unknown models get GENERIC_PROFILE."""
    key = model.strip().rsplit("/", 1)[-1].lower()
    for profile in _BY_PREFIX:
        if key.startswith(profile.name.lower()):
            return profile
    return GENERIC_PROFILE
