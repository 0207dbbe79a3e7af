"""bot.pricing and the spending lines of bot.report: tokens to dollars. Pure."""

import pytest

from bot.pricing import FALLBACK, PRICES, add_tokens, cost_usd, price_of, tokens_of
from bot.report import spending_line, spent_usd


@pytest.mark.parametrize("model, row, known", [
    ("claude-sonnet-5-5", "claude-sonnet-5-5", True),
    ("claude-sonnet-5", "claude-sonnet-5", True),  # not taken for sonnet-5-5's row, nor the reverse
    ("claude-opus-4-5-20251101", "claude-opus-4-5", True),  # a dated id is priced as its family
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5", True),
    ("claude-sonnet-5-5-preview", "claude-sonnet-5-5", True),
    ("claude-unknown-9", None, False),  # unknown: the dearest row, flagged
    ("gpt-6", None, False),
], ids=["sonnet-5-5", "sonnet-5", "dated", "haiku-dated", "suffixed", "unknown-claude", "not-claude"])
def test_price_rows(model, row, known):
    price, found = price_of(model)
    assert found is known
    assert price == (PRICES[row] if row else FALLBACK)


@pytest.mark.parametrize("model, tokens, usd", [
    ("claude-sonnet-5-5", {"input": 1_000_000}, 2.0),
    ("claude-sonnet-5-5", {"output": 1_000_000}, 10.0),
    ("claude-sonnet-5-5", {"cache_read": 1_000_000}, 0.2),
    ("claude-sonnet-5-5", {"cache_write": 1_000_000}, 2.5),
    ("claude-opus-5-5", {"input": 1000, "output": 1000, "cache_read": 10_000, "cache_write": 2000}, 0.036),
    ("claude-sonnet-5-5", {}, 0.0),
], ids=["input", "output", "cache-read", "cache-write", "mixed-opus", "nothing"])
def test_cost(model, tokens, usd):
    assert cost_usd(model, tokens)[0] == pytest.approx(usd)


def test_tokens_from_an_sdk_usage_or_a_dict():
    class Usage:
        input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens = 10, 2, None, 5

    assert tokens_of(Usage()) == {"input": 10, "cache_write": 0, "cache_read": 5, "output": 2}
    assert tokens_of({"input_tokens": 3}) == {"input": 3, "cache_write": 0, "cache_read": 0, "output": 0}
    assert add_tokens({"input": 1}, {"input": 2, "output": 3}) == {"input": 3, "cache_write": 0, "cache_read": 0, "output": 3}


ROWS = [
    {"id": 0, "kind": "baseline", "status": "keep", "cost_usd": 0.5},
    {"id": 1, "kind": "experiment", "status": "discard", "cost_usd": 0.5,
     "proposal": {"proposer": "anthropic", "model": "claude-sonnet-5-5", "usd": 0.01,
                  "tokens": {"input": 100, "cache_read": 2000, "cache_write": 0, "output": 50}}},
    {"id": 2, "kind": "experiment", "status": "invalid", "cost_usd": 0.0,
     "proposal": {"proposer": "anthropic", "model": "claude-sonnet-5-5", "usd": 0.02,
                  "tokens": {"input": 200, "cache_read": 0, "cache_write": 3000, "output": 60}}},
    {"id": 3, "kind": "experiment", "status": "keep", "cost_usd": 0.5,
     "proposal": {"proposer": "offline (fallback)", "usd": 0.0, "tokens": {}}},
]


def test_spent_counts_runs_and_every_proposal():
    assert spent_usd(ROWS) == pytest.approx(1.53)
    assert spent_usd([]) == 0.0


def test_spending_line():
    line = spending_line(ROWS)
    assert line.startswith("proposals: 3 by claude-sonnet-5-5; tokens 300 input, 2,000 cached read, 3,000 cache write, 110 output")
    assert "$0.0300; GPU $1.5000; total $1.5300" in line and "1 proposed offline while the API was unavailable" in line
    assert spending_line([r for r in ROWS if r["id"] in (0, 3)]) == "GPU $1.0000; proposals free (offline); total $1.0000"
    assert spending_line([dict(r, cost_usd=0.0) for r in ROWS if r["id"] in (0, 3)]) is None  # nothing spent
