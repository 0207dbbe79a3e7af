"""The Claude proposer through the real `anthropic` SDK against the loopback Messages API
(tests/anthropic_api): good answers, malformed and hostile ones, API failures, the loop's
re-asks, crash repair and pipelining. A runner that counts submissions proves that nothing
refused ever reaches it."""

import dataclasses
import threading
import time

import anthropic
import pytest
from anthropic_api.server import error, hang, text, tool_use
from conftest import TOY_TRAIN, LoopRun, ScriptedRunner

from bot.errors import BotError
from bot.github.messages import pr_body
from bot.loop import ResearchLoop
from bot.pricing import cost_usd
from bot.proposers.anthropic import AnthropicProposer
from bot.proposers.offline import OfflineProposer

LR_UP = {"file": "train.py", "search": "LR = 0.04  # learning rate", "replace": "LR = 0.06  # learning rate"}


def change(*edits, description="LR 0.04 -> 0.06", rationale="a higher rate trains faster in the budget"):
    return {"description": description, "rationale": rationale, "edits": list(edits)}


class CountingRunner(ScriptedRunner):
    """ScriptedRunner that takes `seconds` per run, remembers when each ran, and gives a crash
    (a None metric) a traceback in its log tail, as a real crash has."""

    def __init__(self, metrics, seconds=0.0):
        super().__init__(metrics)
        self.seconds, self.spans = seconds, []

    def submit(self, experiment):
        from bot.runners import FinishedHandle

        started = time.monotonic()
        time.sleep(self.seconds)
        result = super().submit(experiment).result()
        if result.status == "crash":
            result = dataclasses.replace(result, log_tail="Traceback (most recent call last):\n  File \"train.py\", "
                                         "line 9\nRuntimeError: toy crash: LR does not fit")
        self.spans.append((started, time.monotonic()))
        return FinishedHandle(result)


@pytest.fixture
def world(toy_repo, anthropic_server):
    """A toy repository, the loop with the Claude proposer pointed at the loopback server."""

    class World:
        server = anthropic_server

        def __init__(self):
            self.repo = toy_repo(extra={"prepare.py": "FROZEN = 1\n"})  # a harness file to refuse edits to
            self.warnings, self.sleeps = [], []

        def loop(self, metrics, seconds=0.0, timeout=10, **settings):
            settings = {"decision_rule": "greedy", "replicates": 1, "proposal_attempts": 1, "harness": ["prepare.py"], **settings}
            self.run = LoopRun(self.repo, **settings)
            self.runner = CountingRunner(metrics, seconds)
            client = anthropic.Anthropic(api_key="test-key", base_url=anthropic_server.url, max_retries=0)
            config = self.run.config
            self.proposer = AnthropicProposer(
                client, OfflineProposer(config.seed), model=config.model, program_text="# program\nlower val_bpb",
                editable=config.editable, api_attempts=config.api_attempts,
                max_wait_seconds=config.api_max_wait_seconds, timeout_seconds=timeout,
                sleep=self.sleeps.append, warn=self.warnings.append)
            return ResearchLoop(config, self.run.git, self.runner, self.proposer, self.run.ledger,
                                events=lambda kind, **facts: self.run.events.append((kind, facts)))

    return World()


# ---- answers that work -------------------------------------------------------------------

def test_a_tool_answer_becomes_an_experiment_with_its_cost(world):
    usage = {"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 9000}
    world.server.enqueue(tool_use(change(LR_UP), usage=usage))
    result = world.loop([3.5, 3.3]).run(iterations=1)
    record = world.run.records()[-1]
    assert result["stop_reason"] == "finished 1 experiment(s)"
    assert (record["status"], record["description"]) == ("keep", "LR 0.04 -> 0.06")
    assert record["rationale"] == "a higher rate trains faster in the budget"
    spent = record["proposal"]
    assert spent["tokens"] == {"input": 1200, "cache_write": 0, "cache_read": 9000, "output": 300}
    assert spent["usd"] == cost_usd("claude-sonnet-5-5", spent["tokens"])[0] == pytest.approx(0.0072)
    assert spent["model"] == "claude-sonnet-5-5" and spent["attempts"] == 1
    body = pr_body(record, world.run.records()[0])
    assert "Proposed by claude-sonnet-5-5" in body and "9,000 cached read" in body and "$0.0072" in body
    request = world.server.bodies[0]
    assert request["tools"][0]["name"] == "propose_change"
    assert request["system"][-1]["cache_control"] == {"type": "ephemeral"}  # the stable prefix is cached
    assert "lower val_bpb" in request["system"][1]["text"]  # program.md
    assert "LR = 0.04" in request["system"][-1]["text"]  # the files at the head
    assert "evaluate_bpb" in request["system"][2]["text"] and "prepare.py" not in request["system"][-1]["text"]


@pytest.mark.parametrize("answer", [
    "Let me raise the learning rate.\n\n```json\n" + __import__("json").dumps(change(LR_UP)) + "\n```\n",
    "Description: LR 0.04 -> 0.06\nRationale: faster.\n\ntrain.py\n<<<<<<< SEARCH\nLR = 0.04  # learning rate\n"
    "=======\nLR = 0.06  # learning rate\n>>>>>>> REPLACE\n\nThat should help.",
    "Description: LR 0.04 -> 0.06\r\n\r\n```python\r\n" + TOY_TRAIN.format(behaviour="ok").replace("0.04", "0.06").replace("\n", "\r\n") + "```",
], ids=["fenced-json", "prose-around-search-replace", "crlf-whole-file"])
def test_text_answers_without_the_tool_are_read(world, answer):
    world.server.enqueue(text(answer))
    world.loop([3.5, 3.4]).run(iterations=1)
    record = world.run.records()[-1]
    assert record["status"] == "keep" and record["description"].startswith("LR 0.04 -> 0.06")
    assert len(world.runner.seeds) == 2


# ---- malformed and hostile answers: refused before compute -------------------------------

HOSTILE = [
    ("harness", change({"file": "prepare.py", "search": "x", "replace": "y"}), "there is no file prepare.py"),
    ("harness-whole", {"description": "d", "rationale": "r", "files": [{"file": "prepare.py", "content": "X = 1\n"}]}, "frozen harness"),
    ("other-file", {"description": "d", "rationale": "r", "files": [{"file": "notes.py", "content": "X = 1\n"}]}, "not editable"),
    ("dotdot", {"description": "d", "rationale": "r", "files": [{"file": "../train.py", "content": "X = 1\n"}]}, "outside the repository"),
    ("absolute", {"description": "d", "rationale": "r", "files": [{"file": "/etc/cron.d/x", "content": "X = 1\n"}]}, "outside the repository"),
    ("requests", change({"file": "train.py", "search": "import os, sys, time", "replace": "import os, sys, time\nimport requests"}), "imports requests"),
    ("subprocess", change({"file": "train.py", "search": "import os, sys, time", "replace": "import os, sys, time\nos.system('curl x')"}), "os.system"),
    ("eval", change({"file": "train.py", "search": "import os, sys, time", "replace": "import os, sys, time\neval('1')"}), "eval"),
    ("seed-only", change({"file": "train.py", "search": "import os, sys, time", "replace": "import os, sys, time\nimport torch\ntorch.manual_seed(7)"}), "only changes a random seed"),
    ("no-edits", {"description": "d", "rationale": "r", "edits": []}, "no edits"),
    ("edits-not-list", {"description": "d", "rationale": "r", "edits": "LR = 0.06"}, "must be lists"),
    ("search-missing", change({"file": "train.py", "search": "LR = 0.4", "replace": "LR = 0.5"}), "not in the file"),
    ("search-twice", change({"file": "train.py", "search": "print(", "replace": "print(  "}), "matches .* places"),
    ("no-op", change({"file": "train.py", "search": "LR = 0.04", "replace": "LR = 0.04"}), "identical"),
    ("syntax", change({"file": "train.py", "search": "LR = 0.04", "replace": "LR = = 0.04"}), "no longer parses"),
    ("no-description", change(LR_UP, description="  "), "no description"),
    ("too-large", {"description": "d", "rationale": "r", "files": [{"file": "train.py", "content": "X = 1\n" + "#" * 2_000_000}]}, "over the limit"),
]


@pytest.mark.parametrize("answer, message", [(a, m) for _, a, m in HOSTILE], ids=[name for name, _, _ in HOSTILE])
def test_malformed_or_hostile_tool_answers_never_reach_the_runner(world, answer, message):
    world.server.enqueue(tool_use(answer))
    result = world.loop([3.5]).run(iterations=1)
    record = world.run.records()[-1]
    assert record["status"] == "invalid" and record["commit"] is None
    assert __import__("re").search(message, record["reason"]), record["reason"]
    assert len(world.runner.seeds) == 1  # the baseline only
    assert result["stop_reason"] == "finished 1 experiment(s)"
    assert world.run.ledger.tsv_path.read_text().count("\n") == 2  # header + baseline: invalid rows stay out


def test_prose_without_a_change_and_a_duplicate_are_refused(world):
    world.server.enqueue(tool_use(change(LR_UP)), text("I would try something with the width, maybe."),
                         tool_use(change(LR_UP)))
    world.loop([3.5, 3.6]).run(iterations=3)
    statuses = [(r["status"], r["reason"]) for r in world.run.records()[1:]]
    assert statuses[0][0] == "discard"
    assert statuses[1][0] == "invalid" and "no change found" in statuses[1][1]
    assert statuses[2][0] == "invalid" and "already tried" in statuses[2][1]
    assert len(world.runner.seeds) == 2


def test_a_refusal_goes_back_to_the_model_which_fixes_it(world):
    world.server.enqueue(tool_use(change({"file": "train.py", "search": "LR = 0.4", "replace": "LR = 0.5"})),
                         tool_use(change(LR_UP)))
    world.loop([3.5, 3.4], proposal_attempts=3).run(iterations=1)
    record = world.run.records()[-1]
    assert record["status"] == "keep" and record["proposal"]["attempts"] == 2
    second = world.server.bodies[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    result = second[2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == second[1]["content"][-1]["id"] and "not in the file" in result["content"]


# ---- the API failing ---------------------------------------------------------------------

def test_429_with_retry_after_is_honoured_then_succeeds(world):
    world.server.enqueue(error(429, "rate_limit_error", "slow down", headers={"retry-after": "7"}),
                         tool_use(change(LR_UP)))
    world.loop([3.5, 3.4]).run(iterations=1)
    assert world.sleeps == [7.0]
    assert world.run.records()[-1]["status"] == "keep"
    assert world.run.records()[-1]["proposal"]["proposer"] == "anthropic"


def test_529_overloaded_is_retried(world):
    world.server.enqueue(error(529, "overloaded_error", "Overloaded"), tool_use(change(LR_UP)))
    world.loop([3.5, 3.4]).run(iterations=1)
    assert len(world.sleeps) == 1 and world.run.records()[-1]["status"] == "keep"


def test_an_outage_hands_the_experiment_to_the_offline_proposer_with_a_warning(world):
    world.server.enqueue(*[error(529, "overloaded_error", "Overloaded")] * 3)
    world.loop([3.5, 3.4]).run(iterations=1)
    record = world.run.records()[-1]
    assert record["status"] in ("keep", "discard") and record["change"]["name"] in ("LR", "WIDTH")
    assert record["proposal"]["proposer"] == "offline (fallback)"
    assert "unavailable" in record["proposal"]["warnings"][0]
    assert "Warning: the Anthropic API was unavailable" in pr_body(record, world.run.records()[0])
    assert len(world.runner.seeds) == 2  # no GPU time lost


def test_a_retry_after_beyond_the_allowed_wait_falls_back_at_once(world):
    world.server.enqueue(error(429, "rate_limit_error", "quota", headers={"retry-after": "3600"}))
    world.loop([3.5, 3.4]).run(iterations=1)
    assert world.sleeps == []
    assert "3600" in world.run.records()[-1]["proposal"]["warnings"][0]


def test_401_stops_with_the_variable_named(world):
    world.server.enqueue(error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(BotError, match="ANTHROPIC_API_KEY"):
        world.loop([3.5]).run(iterations=2)
    assert len(world.runner.seeds) == 1  # the baseline, measured while the proposal was asked for


def test_a_hanging_api_is_cut_by_the_client_timeout(world):
    world.server.enqueue(hang(30))
    started = time.monotonic()
    world.loop([3.5, 3.4], api_attempts=1, timeout=0.5).run(iterations=1)
    assert time.monotonic() - started < 10
    assert "timed out" in world.run.records()[-1]["proposal"]["warnings"][0]


# ---- crash repair and pipelining ---------------------------------------------------------

def test_a_crash_gets_one_repair_that_sees_its_log(world):
    width = change({"file": "train.py", "search": "WIDTH = 64  # model width", "replace": "WIDTH = 96  # model width"},
                   description="WIDTH 64 -> 96")
    fix = change({"file": "train.py", "search": "LR = 0.06  # learning rate", "replace": "LR = 0.05  # learning rate"},
                 description="fix: LR 0.06 -> 0.05")
    # asked in this order: experiment 1, the next one (while 1 trains), the repair of 1
    world.server.enqueue(tool_use(change(LR_UP)), tool_use(width), tool_use(fix))
    world.loop([3.5, None, 3.4, 3.45]).run(iterations=3)
    records = world.run.records()
    assert [r["status"] for r in records[1:]] == ["crash", "keep", "discard"]
    assert records[2]["repair_of"] == records[1]["id"] and records[2]["parent"] == records[0]["commit"]
    assert "LR = 0.05" in world.run.git.read_file(records[2]["commit"], "train.py")
    repair_request = world.server.bodies[2]["messages"][0]["content"]
    assert "crashed" in repair_request and "RuntimeError: toy crash" in repair_request
    assert "LR = 0.06  # learning rate" in repair_request  # it saw the crashed files
    assert records[3]["description"] == "WIDTH 64 -> 96"  # the prepared proposal was kept for after the repair
    assert "Repairs the crash of experiment 0001" in pr_body(records[2], records[0])


def test_the_next_proposal_is_asked_for_while_the_current_run_trains(world):
    seen = []
    lock = threading.Lock()

    def answer(request):
        with lock:
            seen.append(time.monotonic())
            number = len(seen)
        value = {1: "0.06", 2: "0.07", 3: "0.08"}.get(number, "0.09")
        return tool_use(change({"file": "train.py", "search": 'BEHAVIOUR = "ok"', "replace": f'LRX = {value}\nBEHAVIOUR = "ok"'},
                               description=f"add LRX {value}"))

    world.server.default = answer
    world.loop([3.5, 3.6, 3.7, 3.8], seconds=0.4).run(iterations=3)
    spans = world.runner.spans
    assert len(spans) == 4
    # each proposal after the first was requested before the previous run had finished
    assert seen[0] < spans[0][1] and seen[1] < spans[1][1] and seen[2] < spans[2][1]


def test_a_prefetched_edit_is_moved_onto_a_head_that_moved(world):
    world.server.enqueue(tool_use(change(LR_UP)), tool_use(change(
        {"file": "train.py", "search": "WIDTH = 64  # model width", "replace": "WIDTH = 96  # model width"},
        description="WIDTH 64 -> 96")))
    world.loop([3.5, 3.3, 3.2]).run(iterations=2)
    records = world.run.records()
    assert [r["status"] for r in records[1:]] == ["keep", "keep"]
    assert records[2]["parent"] == records[1]["commit"] and records[2]["proposal"]["rebased_from"] == records[0]["commit"]
    final = world.run.git.read_file(records[2]["commit"], "train.py")
    assert "LR = 0.06" in final and "WIDTH = 96" in final


def test_a_prefetched_edit_that_no_longer_applies_is_asked_again(world):
    world.server.enqueue(tool_use(change(LR_UP)), tool_use(change(
        {"file": "train.py", "search": "LR = 0.04  # learning rate", "replace": "LR = 0.08  # learning rate"},
        description="LR 0.04 -> 0.08")), tool_use(change(
        {"file": "train.py", "search": "LR = 0.06  # learning rate", "replace": "LR = 0.08  # learning rate"},
        description="LR 0.06 -> 0.08")))
    world.loop([3.5, 3.3, 3.2]).run(iterations=2)
    records = world.run.records()
    assert records[2]["description"] == "LR 0.06 -> 0.08" and len(world.server.requests) == 3
    assert "proposal-stale" in world.run.kinds()


def test_max_usd_stops_the_night(world):
    usage = {"input_tokens": 100_000, "output_tokens": 10_000, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    world.server.default = lambda request: tool_use(change(
        {"file": "train.py", "search": 'BEHAVIOUR = "ok"', "replace": f'X{len(world.server.requests)} = 1\nBEHAVIOUR = "ok"'}), usage=usage)
    result = world.loop([3.5, 3.6, 3.7, 3.8], max_usd=0.5).run(iterations=5)
    assert result["stop_reason"].startswith("max_usd reached")
    assert len(world.runner.seeds) < 5  # each proposal costs $0.30 here


