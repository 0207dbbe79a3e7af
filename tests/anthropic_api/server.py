"""A loopback Anthropic Messages API (`POST /v1/messages`, non-streaming), scripted per test.

The real `anthropic` SDK talks to it through `base_url`. Both directions are checked against
the SDK's own types, so the fake cannot drift from what the SDK (and so the API) defines:

- every request body against `MessageCreateParamsNonStreaming` (and each tool against
  `ToolParam`/`ToolUnionParam`, each system block against `TextBlockParam`, each message
  against `MessageParam`), with unknown keys refused at every level of the TypedDicts and
  every list validated eagerly (see `strict_validator`); a failure answers 400
  invalid_request_error, as the API would, and is kept in `violations`;
- every success body with `anthropic.types.Message.model_validate` and, in addition, with no
  field the SDK's models do not declare; every error body with `anthropic.types.ErrorResponse`;
  a failure answers 500 and is kept in `violations` (it means the fake, or a test, drifted).

Scripting: `server.enqueue(tool_use({...}), rate_limited(retry_after=1), ...)`; each request
takes the next reply; with the queue empty `server.default(request)` answers; with neither,
500 and a violation ("the test scripted no response"). A reply may also be a callable
`request -> reply` (request: the parsed JSON body as a dict).

Simulated, not real: the model (answers are scripted), prompt caching and token counts (usage
is plausible or given by the test), authentication (any non-empty key works), rate limits
and overload (injected with `rate_limited`/`overloaded`/`error`), streaming (not served).
"""

import copy
import functools
import json
import re
import threading
import typing
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import anthropic.types as T
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import SchemaValidator

DEFAULT_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                       403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                       500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
DEFAULT_ERROR_MESSAGES = {"invalid_request_error": "Invalid request", "authentication_error": "invalid x-api-key",
                          "billing_error": "Your credit balance is too low", "permission_error": "Permission denied",
                          "not_found_error": "Not found", "rate_limit_error": "Number of request tokens has "
                          "exceeded your per-minute rate limit", "api_error": "Internal server error",
                          "timeout_error": "Request timed out", "overloaded_error": "Overloaded"}
RECORDED_HEADERS = ("x-api-key", "authorization", "anthropic-version", "anthropic-beta", "content-type",
                    "user-agent", "x-stainless-retry-count", "anthropic-workspace-id", "anthropic-user-profile-id")


# ---- validation against the SDK's own types ----------------------------------------------------

def _strictify(node):
    """Rewrite a pydantic-core schema in place: lists are validated eagerly (the SDK types request
    lists as `Iterable[...]`, which pydantic validates lazily, i.e. not at all here) and unknown
    keys are refused in every TypedDict and model (the API refuses them: "Extra inputs are not
    permitted"; pydantic ignores them on TypedDicts by default)."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "generator":
            node["type"] = "list"
        elif kind in ("typed-dict", "model-fields"):
            node["extra_behavior"] = "forbid"
        elif kind == "model":
            node.setdefault("config", {})["extra_fields_behavior"] = "forbid"
        for value in node.values():
            _strictify(value)
    elif isinstance(node, list):
        for value in node:
            _strictify(value)
    return node


@functools.cache
def strict_validator(tp):
    """A validator for the SDK type `tp` that refuses unknown keys and checks every list item."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        tp.model_rebuild()  # the SDK's models defer building their schema
        schema = tp.__pydantic_core_schema__
    else:
        schema = TypeAdapter(tp).core_schema
    return SchemaValidator(_strictify(copy.deepcopy(schema)))


@functools.cache
def declared_keys(typed_dict):
    """(all keys, required keys) of a TypedDict, inherited ones included. `__required_keys__` is
    not used: the SDK's modules use `from __future__ import annotations`, so `Required[...]`
    is invisible there (it reports no required key at all); the evaluated hints show it."""
    hints = typing.get_type_hints(typed_dict, include_extras=True)
    total = getattr(typed_dict, "__total__", True)
    required = {k for k, v in hints.items()
                if typing.get_origin(v) is typing.Required or (total and typing.get_origin(v) is not typing.NotRequired)}
    return frozenset(hints), frozenset(required)


def _errors(exc, value, limit=3):
    """The most telling few pydantic errors as 'path: message'. Union members name themselves in
    an error's location (`UserMessageParam`, `list[...]`, `str`); only the parts that index the
    input are kept. Errors from the member named after the input's `type` (ToolUseBlock for
    "tool_use") come first, then the deepest (the member that matched furthest)."""
    found = []
    for err in exc.errors():
        node, path, rank = value, [], 1
        for part in err["loc"]:
            if ((isinstance(node, dict) and part in node)
                    or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node))):
                node = node[part]
            elif err["type"] in ("extra_forbidden", "missing") and part == err["loc"][-1]:
                node = None
            else:
                if isinstance(part, str) and isinstance(node, dict) and isinstance(node.get("type"), str):
                    tag = re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower()
                    named = {node["type"], node["type"] + "_param", node["type"] + "_block",
                             node["type"] + "_block_param"}
                    rank = 0 if tag in named else 2
                continue
            path.append(str(part))
        found.append(((rank, -len(path)), f"{'.'.join(path) or '(body)'}: {err['msg']}"))
    lines = list(dict.fromkeys(line for _, line in sorted(found, key=lambda f: f[0])))
    more = len(lines) - limit
    return "; ".join(lines[:limit]) + (f" (+{more} more)" if more > 0 else "")


def check_request(body):
    """Reasons the Messages API would refuse `body` per the SDK's request types ([] if none)."""
    if not isinstance(body, dict):
        return ["the request body must be a JSON object"]
    params = MessageCreateParamsNonStreaming
    keys, required = declared_keys(params)
    reasons = [f"{k}: Extra inputs are not permitted" for k in body if k not in keys]
    reasons += [f"{k}: Field required" for k in sorted(required) if k not in body]
    if body.get("stream"):
        reasons.append("stream: this loopback server serves non-streaming requests only")
    system = body.get("system")
    if isinstance(system, list):
        reasons += _check_items("system", system, T.TextBlockParam)
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            custom = isinstance(tool, dict) and tool.get("type") in (None, "custom")
            reasons += _check_items(f"tools.{i}", [tool], T.ToolParam if custom else T.ToolUnionParam, index=False)
    messages = body.get("messages")
    if isinstance(messages, list):
        reasons += _check_items("messages", messages, T.MessageParam)
    if not reasons:  # the whole body, for everything not checked item by item above
        try:
            strict_validator(params).validate_python(body)
        except ValidationError as exc:
            reasons.append(_errors(exc, body))
    return reasons


def _check_items(where, items, tp, index=True):
    reasons = []
    for i, item in enumerate(items):
        try:
            strict_validator(tp).validate_python(item)
        except ValidationError as exc:
            reasons.append(f"{where}{f'.{i}' if index else ''}: {_errors(exc, item)}")
    return reasons


def check_message(body):
    """Reasons `body` is not a Message as the SDK defines it ([] if none)."""
    try:
        parsed = T.Message.model_validate(body)
    except ValidationError as exc:
        return [f"not an anthropic.types.Message: {_errors(exc, body)}"]
    undeclared = list(_undeclared(parsed, "message"))
    return [f"fields the SDK's types do not declare: {', '.join(undeclared)}"] if undeclared else []


def _undeclared(node, where):
    """Paths of the keys the SDK's models kept as extras (they allow extras; we invent none)."""
    if isinstance(node, BaseModel):
        for key in node.__pydantic_extra__ or {}:
            yield f"{where}.{key}"
        for name in type(node).model_fields:
            yield from _undeclared(getattr(node, name), f"{where}.{name}")
    elif isinstance(node, (list, tuple)):
        for i, item in enumerate(node):
            yield from _undeclared(item, f"{where}.{i}")


def check_error(body):
    try:
        T.ErrorResponse.model_validate(body)
    except ValidationError as exc:
        return [f"not an anthropic.types.ErrorResponse: {_errors(exc, body)}"]
    return []


@functools.cache
def warm_up():
    """Build the validators once per process (about a second), before any client timeout runs."""
    check_request({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]})
    check_message({"id": "msg_0", "type": "message", "role": "assistant", "model": "m", "content": [],
                   "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}})
    check_error({"type": "error", "error": {"type": "api_error", "message": "x"}})


# ---- replies (what a test scripts) ---------------------------------------------------------

@dataclass
class Reply:
    """One scripted answer. `body` is final for errors and `raw`; for messages, `model`, `id` and
    missing `usage` fields are filled in per request (see `FakeAnthropic.render`)."""

    status: int
    body: object
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    kind: str = "message"  # message | error | raw
    validate: bool = True


def _usage(usage):
    return dict(usage) if usage is not None else None


def text_block(body):
    return {"type": "text", "text": body, "citations": None}


def tool_use_block(input, name="propose_change", id=None):
    return {"type": "tool_use", "id": id or f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": input}


def thinking_block(thinking, signature="sig"):
    return {"type": "thinking", "thinking": thinking, "signature": signature}


def message(content, *, stop_reason="end_turn", usage=None, model=None, delay=0.0, headers=None, **fields):
    """Any assistant Message: `content` is a list of blocks (`text_block`, `tool_use_block`,
    `thinking_block`, or dicts); `fields` override top-level fields (e.g. stop_sequence)."""
    body = {"content": list(content), "stop_reason": stop_reason, "model": model, "usage": _usage(usage), **fields}
    return Reply(200, body, dict(headers or {}), delay)


def tool_use(input, *, name="propose_change", text=None, usage=None, model=None, delay=0.0, stop_reason="tool_use"):
    """A Message whose content is [optional text block, tool_use block]; stop_reason tool_use."""
    blocks = ([text_block(text)] if text is not None else []) + [tool_use_block(input, name)]
    return message(blocks, stop_reason=stop_reason, usage=usage, model=model, delay=delay)


def text(body, *, usage=None, model=None, delay=0.0, stop_reason="end_turn"):
    """A Message with one text block; stop_reason end_turn (max_tokens for a truncated answer)."""
    return message([text_block(body)], stop_reason=stop_reason, usage=usage, model=model, delay=delay)


def error(status, error_type=None, message=None, *, headers=None, delay=0.0):
    """The API's error envelope {"type": "error", "error": {"type", "message"}, "request_id"}."""
    error_type = error_type or DEFAULT_ERROR_TYPES.get(status, "api_error")
    body = {"type": "error", "error": {"type": error_type, "message": message or DEFAULT_ERROR_MESSAGES.get(
        error_type, "error")}}
    return Reply(status, body, {k.lower(): str(v) for k, v in (headers or {}).items()}, delay, kind="error")


def rate_limited(retry_after=None, message=None, *, headers=None, delay=0.0):
    """429 rate_limit_error, with `retry-after` (seconds) when given, as the API sends it."""
    extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return error(429, "rate_limit_error", message, headers={**extra, **(headers or {})}, delay=delay)


def overloaded(retry_after=None, message=None, *, headers=None, delay=0.0):
    """529 overloaded_error (the SDK raises anthropic.OverloadedError)."""
    extra = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return error(529, "overloaded_error", message, headers={**extra, **(headers or {})}, delay=delay)


def hang(seconds, then=None):
    """Answer `then` (default: a short text) only after `seconds`, or give up at `stop()`: for a
    client timeout without hanging the suite."""
    reply = copy.deepcopy(then) if then is not None else text("(answered after a hang)")
    reply.delay = float(seconds)
    return reply


def raw(body, status=200, *, headers=None, delay=0.0, validate=True):
    """A body served as given. validate=True: still checked (a 2xx as a Message, else as an
    error), so a test can show that the server catches a malformed reply. validate=False: an
    explicit deviation for testing the client against garbage (counted in `deviations`)."""
    return Reply(status, body, dict(headers or {}), delay, kind="raw", validate=validate)


# ---- the server -----------------------------------------------------------------------------

@dataclass
class Request:
    body: object  # the parsed JSON body
    headers: dict  # RECORDED_HEADERS that were present, lower-case names
    path: str
    status: int = 0  # the status answered
    reply: object = None  # the Reply used, if any

    @property
    def api_key(self):
        """The key sent, as x-api-key or as `Authorization: Bearer` (what SDK 2.x sends)."""
        auth = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") or (auth[7:] if auth.lower().startswith("bearer ") else None) or None


class FakeAnthropic:
    def __init__(self):
        self.lock = threading.RLock()
        self.queue = []
        self.default = None  # callable(request dict) -> Reply | None
        self.requests = []
        self.violations = []
        self.deviations = []  # raw(..., validate=False) replies served
        self.httpd = None
        self.url = None
        self._stopping = threading.Event()

    def start(self):
        warm_up()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self.url

    def stop(self):
        self._stopping.set()  # wakes every hang
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def enqueue(self, *replies):
        with self.lock:
            self.queue.extend(replies)
        return self

    @property
    def bodies(self):
        """The parsed bodies of the /v1/messages requests received, in order."""
        with self.lock:
            return [r.body for r in self.requests if r.path == "/v1/messages"]

    @property
    def pending(self):
        with self.lock:
            return len(self.queue)

    # ---- serving -----------------------------------------------------------------------------

    def _next_reply(self, body):
        with self.lock:
            reply = self.queue.pop(0) if self.queue else None
        if reply is None and self.default is not None:
            reply = self.default(body)
        if callable(reply) and not isinstance(reply, Reply):
            reply = reply(body)
        if isinstance(reply, dict):
            reply = raw(reply)
        return reply

    def answer(self, method, path, headers, raw_body):
        """(status, body, headers, delay, reply) for one request; records it."""
        record = Request(None, {k: headers[k] for k in RECORDED_HEADERS if headers.get(k) is not None},
                         path)
        with self.lock:
            self.requests.append(record)
        status, body, extra, delay, reply = self._answer(method, path, record, raw_body)
        record.status, record.reply = status, reply
        return status, body, extra, delay

    def _answer(self, method, path, record, raw_body):
        if method != "POST" or urlsplit(path).path != "/v1/messages":
            return self._refuse(404, "not_found_error", f"{method} {path}: not served by this loopback server "
                                "(only POST /v1/messages)", violation=True)
        record.path = "/v1/messages"
        try:
            record.body = json.loads(raw_body or b"null")
        except ValueError as exc:
            return self._refuse(400, "invalid_request_error", f"the body is not JSON: {exc}", violation=True)
        if not record.api_key:
            return self._refuse(401, "authentication_error", "x-api-key header is required")
        if "anthropic-version" not in record.headers:
            return self._refuse(400, "invalid_request_error", "anthropic-version: header is required",
                                violation=True)
        reasons = check_request(record.body)
        if reasons:
            return self._refuse(400, "invalid_request_error", "; ".join(reasons), violation=True)
        try:
            reply = self._next_reply(record.body)
        except Exception as exc:  # noqa: BLE001 (a bug in a test's callable: fail the test loudly)
            return self._refuse(500, "api_error", f"the scripted callable raised {exc!r}", violation=True)
        if not isinstance(reply, Reply):
            return self._refuse(500, "api_error", "the test scripted no response for this request"
                                + ("" if reply is None else f" (got {reply!r})"), violation=True)
        body = self.render(reply, record.body)
        if reply.validate:
            problems = check_message(body) if 200 <= reply.status < 300 else check_error(body)
            if problems:
                return self._refuse(500, "api_error", f"the fake served a malformed reply: {'; '.join(problems)}",
                                    violation=True)
        else:
            with self.lock:
                self.deviations.append(reply)
        return reply.status, body, reply.headers, reply.delay, reply

    def render(self, reply, request):
        if reply.kind == "raw":
            return copy.deepcopy(reply.body)
        body = copy.deepcopy(reply.body)
        if reply.kind == "error":
            body.setdefault("request_id", _request_id())
            return body
        usage = self.default_usage(request, body["content"])
        usage.update(body["usage"] or {})
        if body["usage"] and "cache_creation_input_tokens" in body["usage"] and "cache_creation" not in body["usage"]:
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"] or 0,
                                       "ephemeral_1h_input_tokens": 0}
        return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
                **body, "model": body["model"] or request.get("model"), "stop_sequence": body.get("stop_sequence"),
                "usage": usage}

    @staticmethod
    def default_usage(request, content):
        """Plausible counts (about 4 characters a token); no caching unless the test says so."""
        return {"input_tokens": max(1, len(json.dumps(request)) // 4),
                "output_tokens": max(1, len(json.dumps(content)) // 4),
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard"}

    def _refuse(self, status, error_type, message, violation=False):
        if violation:
            with self.lock:
                self.violations.append(f"{status} {error_type}: {message}")
        return status, {"type": "error", "error": {"type": error_type, "message": message},
                        "request_id": _request_id()}, {}, 0.0, None


def _request_id():
    return f"req_{uuid.uuid4().hex[:24]}"


class _Handler(BaseHTTPRequestHandler):
    fake = None

    def log_message(self, *args):
        pass

    def _serve(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, body, extra, delay = self.fake.answer(method, self.path, headers, raw_body)
        except Exception as exc:  # noqa: BLE001 (a bug in this server: fail the test loudly)
            with self.fake.lock:
                self.fake.violations.append(f"server error on {method} {self.path}: {exc!r}")
            status, body, extra, delay = 500, {"type": "error", "error": {"type": "api_error",
                                                                         "message": repr(exc)}}, {}, 0.0
        if delay and self.fake._stopping.wait(delay):
            return  # stopped while hanging: the client has long given up
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", (body.get("request_id") if isinstance(body, dict) else None)
                             or _request_id())
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client timed out and closed the connection
            pass

    def do_POST(self):
        self._serve("POST")

    def do_GET(self):
        self._serve("GET")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")
