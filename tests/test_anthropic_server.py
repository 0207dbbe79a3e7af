"""The loopback Messages API driven by the real `anthropic` SDK: what a proposer will see."""

import json
import threading
import time
import urllib.error
import urllib.request

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock
from anthropic_api.server import (
    error,
    hang,
    message,
    overloaded,
    rate_limited,
    raw,
    text,
    thinking_block,
    tool_use,
)

SYSTEM = [{"type": "text", "text": "program.md ...", "cache_control": {"type": "ephemeral"}},
          {"type": "text", "text": "recent history ..."}]
TOOLS = [{"name": "propose_change", "description": "Propose one change.",
          "input_schema": {"type": "object", "additionalProperties": False, "required": ["description", "edits"],
                           "properties": {"description": {"type": "string"}, "rationale": {"type": "string"},
                                          "edits": {"type": "array", "items": {"type": "object"}}}},
          "cache_control": {"type": "ephemeral"}}]
MODEL = "claude-opus-4-7"


def client(url, **kw):
    kw.setdefault("api_key", "test-key")
    return anthropic.Anthropic(base_url=url, max_retries=kw.pop("max_retries", 0), timeout=kw.pop("timeout", 5), **kw)


def ask(c, **kw):
    args = {"model": MODEL, "max_tokens": 1024, "system": SYSTEM, "tools": TOOLS,
            "messages": [{"role": "user", "content": "Propose the next experiment."}]}
    return c.messages.create(**{**args, **kw})


def test_tool_use_round_trips_into_the_sdk_message(anthropic_server):
    edit = {"description": "Raise LR", "rationale": "loss plateaus\r\n early ✓",
            "edits": [{"path": "train.py", "search": "LR = 0.04\n", "replace": "LR = 0.06\n"}]}
    anthropic_server.enqueue(tool_use(edit, text="Here is my proposal."))
    reply = ask(client(anthropic_server.url))
    assert isinstance(reply, Message)
    assert reply.id.startswith("msg_") and reply.model == MODEL and reply.stop_reason == "tool_use"
    assert isinstance(reply.content[0], TextBlock) and reply.content[0].text == "Here is my proposal."
    block = reply.content[1]
    assert isinstance(block, ToolUseBlock) and block.name == "propose_change" and block.input == edit
    (req,) = anthropic_server.requests
    assert req.api_key == "test-key" and req.headers["anthropic-version"]
    assert req.body["system"] == SYSTEM and req.body["tools"] == TOOLS and req.body["model"] == MODEL


def test_text_reply_and_a_re_ask_with_the_sdk_objects_sent_back(anthropic_server):
    anthropic_server.enqueue(text("```diff\n- LR = 0.04\n+ LR = 0.06\n```"), tool_use({"description": "x"}))
    c = client(anthropic_server.url)
    first = ask(c)
    assert first.stop_reason == "end_turn" and first.content[0].text.startswith("```diff")
    second = ask(c, messages=[{"role": "user", "content": "Propose."},
                              {"role": "assistant", "content": first.content},  # SDK models, as a proposer would
                              {"role": "user", "content": "Use the propose_change tool."}])
    assert second.content[0].input == {"description": "x"}
    assert anthropic_server.bodies[1]["messages"][1]["content"][0]["type"] == "text"


def test_tool_result_turn_and_thinking_blocks_are_accepted(anthropic_server):
    anthropic_server.enqueue(tool_use({"a": 1}), message([thinking_block("hmm"), {"type": "text", "text": "ok"}]))
    c = client(anthropic_server.url)
    first = ask(c)
    reply = ask(c, messages=[{"role": "user", "content": "Propose."},
                             {"role": "assistant", "content": first.content},
                             {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[0].id,
                                                           "content": "search text not found", "is_error": True}]}])
    assert reply.content[0].type == "thinking" and reply.content[1].text == "ok"


def test_usage_cache_fields_arrive(anthropic_server):
    anthropic_server.enqueue(tool_use({"a": 1}, usage={"input_tokens": 120, "output_tokens": 80,
                                                       "cache_creation_input_tokens": 0,
                                                       "cache_read_input_tokens": 9000}),
                             text("x"))
    c = client(anthropic_server.url)
    usage = ask(c).usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens) == (120, 80, 9000, 0)
    default = ask(c).usage  # plausible defaults: no caching unless a test says so
    assert default.input_tokens > 0 and default.output_tokens > 0 and default.cache_read_input_tokens == 0


def test_429_with_retry_after(anthropic_server):
    anthropic_server.enqueue(rate_limited(retry_after=7))
    with pytest.raises(anthropic.RateLimitError) as exc:
        ask(client(anthropic_server.url))
    assert exc.value.status_code == 429 and exc.value.response.headers["retry-after"] == "7"
    assert exc.value.type == "rate_limit_error" and exc.value.request_id.startswith("req_")


def test_sdk_retry_honours_retry_after(anthropic_server):
    anthropic_server.enqueue(rate_limited(retry_after=0.2), text("ok"))
    started = time.monotonic()
    assert ask(client(anthropic_server.url, max_retries=1)).content[0].text == "ok"
    assert 0.2 <= time.monotonic() - started < 2
    assert [r.headers.get("x-stainless-retry-count") for r in anthropic_server.requests] == ["0", "1"]


def test_529_overloaded(anthropic_server):
    anthropic_server.enqueue(overloaded(retry_after=3))
    with pytest.raises(anthropic.OverloadedError) as exc:
        ask(client(anthropic_server.url))
    assert exc.value.status_code == 529 and isinstance(exc.value, anthropic.InternalServerError)
    assert exc.value.response.headers["retry-after"] == "3"


def test_401_scripted_and_a_request_without_a_key(anthropic_server):
    anthropic_server.enqueue(error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(anthropic.AuthenticationError) as exc:
        ask(client(anthropic_server.url))
    assert exc.value.status_code == 401 and anthropic_server.pending == 0
    # the SDK cannot send an empty key (`Bearer ` is an illegal header value), so ask plainly
    request = urllib.request.Request(f"{anthropic_server.url}/v1/messages", method="POST",
                                     data=b'{"model": "m", "max_tokens": 1, "messages": []}',
                                     headers={"anthropic-version": "2023-06-01", "content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=5)
    assert http.value.code == 401 and json.load(http.value)["error"]["type"] == "authentication_error"
    assert http.value.headers["request-id"].startswith("req_")


def test_hang_times_out_the_client(anthropic_server):
    anthropic_server.enqueue(hang(5))
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        ask(client(anthropic_server.url, timeout=0.5))
    assert time.monotonic() - started < 2


def test_unknown_top_level_key_is_refused(anthropic_server):
    with pytest.raises(anthropic.BadRequestError) as exc:
        ask(client(anthropic_server.url), extra_body={"bogus": 1})
    assert "bogus: Extra inputs are not permitted" in exc.value.api_message
    assert len(anthropic_server.violations) == 1
    anthropic_server.violations.clear()


@pytest.mark.parametrize("change, reason", [
    ({"system": [{"type": "text", "text": "x", "cache_contol": {"type": "ephemeral"}}]}, "system.0"),
    ({"messages": [{"role": "user", "content": [{"type": "txt", "text": "x"}]}]}, "messages.0"),
    ({"tools": [{"name": "propose_change"}]}, "tools.0"),
    ({"max_tokens": "many"}, "max_tokens"),
])
def test_malformed_nested_requests_are_refused(anthropic_server, change, reason):
    with pytest.raises(anthropic.BadRequestError) as exc:
        ask(client(anthropic_server.url), **change)
    assert reason in exc.value.api_message
    assert len(anthropic_server.violations) == 1
    anthropic_server.violations.clear()


def test_malformed_scripted_reply_is_caught(anthropic_server):
    good = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "end_turn",
            "content": [{"type": "text", "text": "hi"}], "stop_sequence": None}
    anthropic_server.enqueue(raw(good),  # no usage
                             raw({**good, "usage": {"input_tokens": 1, "output_tokens": 1}, "stop_reasn": "x"}),
                             error(413, "request_too_large", "too big"))  # not an ErrorResponse in this SDK
    c = client(anthropic_server.url)
    for _ in range(3):
        with pytest.raises(anthropic.InternalServerError):
            ask(c)
    assert "usage" in anthropic_server.violations[0] and "stop_reasn" in anthropic_server.violations[1]
    assert "ErrorResponse" in anthropic_server.violations[2]
    anthropic_server.violations.clear()


def test_unscripted_request_fails_visibly(anthropic_server):
    with pytest.raises(anthropic.InternalServerError) as exc:
        ask(client(anthropic_server.url))
    assert "scripted no response" in exc.value.api_message
    assert anthropic_server.violations
    anthropic_server.violations.clear()


def test_callables_default_and_other_paths(anthropic_server):
    anthropic_server.enqueue(lambda req: text(f"you sent {len(req['messages'])} message(s)"))
    anthropic_server.default = lambda req: tool_use({"n": req["max_tokens"]})
    c = client(anthropic_server.url)
    assert ask(c).content[0].text == "you sent 1 message(s)"
    assert ask(c, max_tokens=7).content[0].input == {"n": 7}
    with pytest.raises(anthropic.NotFoundError):
        c.models.list()
    assert "GET /v1/models" in anthropic_server.violations[0]
    anthropic_server.violations.clear()
    assert raw({"not": "a message"}, validate=False).validate is False


def test_concurrent_requests_each_get_one_reply(anthropic_server):
    anthropic_server.enqueue(*[tool_use({"i": i}, delay=0.05) for i in range(6)])
    c, got = client(anthropic_server.url), []
    threads = [threading.Thread(target=lambda: got.append(ask(c).content[0].input["i"])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(got) == list(range(6)) and anthropic_server.pending == 0
