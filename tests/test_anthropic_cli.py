"""`bot run` with `proposer: anthropic` as users run it: the CLI builds the real SDK client from
ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL, pointed at the loopback Messages API), real toy
trainings in the sandbox, GitHub mode against the loopback GitHub."""

import json

from anthropic_api.server import tool_use

from bot.github import messages


def _answers():
    """A distinct learning-rate change per request, with usage that includes cache reads."""
    values = iter(["0.05", "0.06", "0.07", "0.08", "0.03", "0.02"])

    def answer(request):
        value = next(values)
        head = request["system"][-1]["text"]
        current = head.split("LR = ", 1)[1].split(" ", 1)[0]
        return tool_use({"description": f"LR {current} -> {value}", "rationale": "the toy's optimum is near 0.09",
                         "edits": [{"file": "train.py", "search": f"LR = {current}  # learning rate",
                                    "replace": f"LR = {value}  # learning rate"}]},
                        usage={"input_tokens": 900, "output_tokens": 150, "cache_creation_input_tokens": 1400,
                               "cache_read_input_tokens": 2800})
    return answer


def test_three_experiments_proposed_by_claude_in_github_mode(github_world, anthropic_server):
    anthropic_server.default = _answers()
    env = {"AUTORESEARCH_PROPOSER": "anthropic", "ANTHROPIC_API_KEY": "sk-ant-test-secret-4242",
           "ANTHROPIC_BASE_URL": anthropic_server.url}
    result = github_world.run(3, env=env)
    assert result.exit_code == 0, result.output
    assert "proposer anthropic (claude-sonnet-5-5)" in result.output
    assert "proposed by claude-sonnet-5-5 in 1 attempt(s)" in result.output
    ledger = (github_world.work / ".autoresearch" / "default" / "experiments.jsonl").read_text()
    rows = [json.loads(line) for line in ledger.splitlines()]
    experiments = [r for r in rows if r.get("kind") == "experiment"]
    assert len(experiments) == 3
    for row in experiments:
        assert row["description"].startswith("LR ") and row["rationale"] == "the toy's optimum is near 0.09"
        assert row["proposal"]["tokens"] == {"input": 900, "cache_write": 1400, "cache_read": 2800, "output": 150}
        assert row["proposal"]["usd"] == 0.00736  # 900×2 + 1400×2.5 + 2800×0.2 + 150×10 per million
    pulls = [p for p in github_world.server.pulls.values() if p["head"].startswith("autoresearch/default-exp/")]
    assert len(pulls) == 3
    for pr in pulls:
        assert "the toy's optimum is near 0.09" in pr["body"]
        assert "Proposed by claude-sonnet-5-5 (anthropic)" in pr["body"] and "$0.0074" in pr["body"]
        assert messages.parse_marker(pr["body"])["proposal"]["usd"] == 0.00736
    status = github_world.bot("status")
    assert "proposals: 3 by claude-sonnet-5-5" in status.output and "total $0.0221" in status.output
    # the key reached neither the experiments nor their logs
    logs = "".join(p.read_text() for p in (github_world.work / ".autoresearch" / "default" / "logs").iterdir())
    assert "sk-ant-test-secret-4242" not in logs and "env-check GITHUB_TOKEN present: False" in logs


def test_a_missing_key_is_named_before_any_compute(github_world, anthropic_server):
    result = github_world.run(1, env={"AUTORESEARCH_PROPOSER": "anthropic", "ANTHROPIC_API_KEY": ""})
    assert result.exit_code == 1
    assert "ANTHROPIC_API_KEY" in result.output and "proposer: offline" in result.output
    assert not (github_world.work / ".autoresearch" / "default" / "experiments.jsonl").exists()
    assert anthropic_server.requests == []
