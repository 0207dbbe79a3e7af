"""What a proposal costs: the Claude price table, in one place. Pure.

Dollars per million tokens, from Anthropic's published model pages and pricing page
(platform.claude.com/docs, "Model pricing"; read 2026-11-23): base input, 5-minute cache
write, cache read (hit or refresh), output. The bot writes its cache with the default
5-minute lifetime, so 1-hour writes are not priced. A model missing from the table is priced
at the most expensive row, flagged as an estimate, so `max_usd` still holds.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Price:
    input: float
    cache_write: float
    cache_read: float
    output: float


# Longest prefix wins: `claude-opus-4-5-20251101` is priced as `claude-opus-4-5`.
PRICES = {
    "claude-fable-5": Price(10.00, 12.50, 1.00, 50.00),
    "claude-fable-5-1": Price(10.00, 12.50, 0.25, 50.00),
    "claude-fable-5-2": Price(10.00, 12.50, 0.25, 50.00),
    "claude-mythos-5": Price(10.00, 12.50, 1.00, 50.00),
    "claude-mythos-5-1": Price(10.00, 12.50, 0.25, 50.00),
    "claude-mythos-5-2": Price(10.00, 12.50, 0.25, 50.00),
    "claude-opus-5-5": Price(4.00, 5.00, 0.20, 20.00),
    "claude-opus-5": Price(5.00, 6.25, 0.50, 25.00),
    "claude-opus-4-8": Price(5.00, 6.25, 0.50, 25.00),
    "claude-opus-4-7": Price(5.00, 6.25, 0.50, 25.00),
    "claude-opus-4-6": Price(5.00, 6.25, 0.50, 25.00),
    "claude-opus-4-5": Price(5.00, 6.25, 0.50, 25.00),
    "claude-sonnet-5-5": Price(2.00, 2.50, 0.20, 10.00),
    "claude-sonnet-5": Price(2.00, 2.50, 0.20, 10.00),
    "claude-sonnet-4-6": Price(3.00, 3.75, 0.30, 15.00),
    "claude-sonnet-4-5": Price(3.00, 3.75, 0.30, 15.00),
    # Haiku 5.5 is $0.10/$0.50 up to a 100k-token prompt (proposals stay far below); its cache
    # rates were not published where we read: the usual 1.25x write and 0.1x read are assumed.
    "claude-haiku-5-5": Price(0.10, 0.125, 0.01, 0.50),
    "claude-haiku-4-5": Price(1.00, 1.25, 0.10, 5.00),
}
FALLBACK = max(PRICES.values(), key=lambda price: price.output)


def price_of(model):
    """(Price, known): the row for `model`, or the dearest row and False when it is not listed."""
    matches = [name for name in PRICES if model == name or model.startswith(name + "-")]
    if not matches:
        return FALLBACK, False
    return PRICES[max(matches, key=len)], True


def tokens_of(usage):
    """The four token counts of an API `usage` (an SDK object or a dict), as a plain dict."""
    def read(name):
        value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
        return int(value or 0)

    return {"input": read("input_tokens"), "cache_write": read("cache_creation_input_tokens"),
            "cache_read": read("cache_read_input_tokens"), "output": read("output_tokens")}


def add_tokens(total, more):
    return {key: total.get(key, 0) + more.get(key, 0) for key in ("input", "cache_write", "cache_read", "output")}


def cost_usd(model, tokens):
    """Dollars for `tokens` ({input, cache_write, cache_read, output}) on `model`, and whether
    the price was known. `input` excludes cached tokens, as the API reports it."""
    price, known = price_of(model)
    usd = (tokens.get("input", 0) * price.input + tokens.get("cache_write", 0) * price.cache_write
           + tokens.get("cache_read", 0) * price.cache_read + tokens.get("output", 0) * price.output) / 1e6
    return round(usd, 6), known


# ---------------------------------------------------------------------------
# GPU seconds on Modal
# ---------------------------------------------------------------------------

# Dollars per second for one GPU, Modal's published per-second prices (modal.com/pricing, "GPU
# Tasks"). Not read from that page here: transcribed from public copies of it, one dated
# 2026-10-04 that checked A10/L40S/A100-80GB/H100 against the live page, the others agreeing to the
# digit (read 2026-11). Modal bills the container's CPU and memory on top (cents per hour at the
# defaults) and multiplies some regions and non-preemptible runs; neither is counted here.
GPU_PRICES = {
    "B200": 0.001736,
    "H200": 0.001261,
    "H100": 0.001097,
    "RTX-PRO-6000": 0.000842,
    "A100-80GB": 0.000694,
    "A100-40GB": 0.000583,
    "L40S": 0.000542,
    "A10": 0.000306,
    "L4": 0.000222,
    "T4": 0.000164,
}
# Modal's other spellings: plain "A100" is the 40 GB card; "B200+" may run on a B300 at B200 prices.
_GPU_ALIASES = {"A100": "A100-40GB", "A10G": "A10", "B200+": "B200"}


def gpu_price_per_second(gpu):
    """(dollars per second, known) for a Modal GPU setting such as "H100!", "a100-80gb" or "H100:2".
    The "!" (no automatic upgrade) does not change the price; ":N" multiplies it. A type missing from
    the table is priced at the dearest row, with known=False, so `max_usd` still holds."""
    name, _, count = str(gpu or "").strip().upper().partition(":")
    name = name.rstrip("!")
    name = _GPU_ALIASES.get(name, name)
    number = int(count) if count.isdigit() and int(count) > 0 else 1
    if name in GPU_PRICES:
        return round(GPU_PRICES[name] * number, 9), True
    return round(max(GPU_PRICES.values()) * number, 9), False
