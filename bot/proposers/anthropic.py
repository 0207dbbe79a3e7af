"""The Claude proposer: reads program.md, the editable files and the run's history, and answers
with one change through the `propose_change` tool.

It receives a ready `anthropic.Anthropic` client (the CLI builds it from ANTHROPIC_API_KEY).
Failures are bounded: 429/529/5xx and timeouts are retried within `max_wait_seconds`, honouring
Retry-After; after `api_attempts` failures the experiment is proposed by the offline proposer,
with a warning, so an outage costs no GPU time. A refused key or an unknown model stops the
run at once with the fix. A refused proposal is sent back in the same conversation with the
reason (the loop decides how often).
"""

import threading
import time

import anthropic

from bot.errors import BotError, ProposalError
from bot.pricing import add_tokens, cost_usd, tokens_of
from bot.proposal import Proposal
from bot.proposers.context import refusal_text, request_text, system_blocks
from bot.proposers.edits import TOOL_NAME, TOOL_SCHEMA, files_from_input, files_from_text

DEFAULT_MODEL = "claude-sonnet-5-5"
TOOL = {"name": TOOL_NAME, "description": "Propose the next experiment: one idea, as edits to the editable files.",
        "input_schema": TOOL_SCHEMA}
_RETRYABLE = (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APITimeoutError,
              anthropic.APIConnectionError)


class Unavailable(Exception):
    """The API failed `api_attempts` times (or asked for a longer wait than allowed)."""


class AnthropicProposer:
    name = "anthropic"
    prefetch = True  # slow enough that the loop asks for the next proposal while a run trains
    repairs = True  # can fix the obvious bug of a crashed experiment

    def __init__(self, client, fallback, *, model=DEFAULT_MODEL, program_text="", editable=("train.py",),
                 metric="val_bpb", direction="minimize", max_tokens=16000, api_attempts=3,
                 max_wait_seconds=300.0, timeout_seconds=180.0, sleep=time.sleep, warn=None):
        self.client, self.fallback, self.model = client, fallback, model
        self.program_text, self.editable = program_text, tuple(editable)
        self.metric, self.direction, self.max_tokens = metric, direction, max_tokens
        self.api_attempts, self.max_wait, self.timeout = api_attempts, max_wait_seconds, timeout_seconds
        self.sleep, self.warn = sleep, warn or (lambda message: None)
        self._threads = {}  # experiment id -> the conversation so far (refusals go back into it)
        self._lock = threading.Lock()

    def propose(self, base_files, history, device=None, experiment_id=0, avoid=(), base_commit=None,
                feedback=(), running=(), repair=None):
        """One Proposal (its `error` set when the answer could not be read as a change).

        feedback: [(Proposal, reason)] refused so far for this experiment, newest last.
        repair: {id, description, files, log_tail} of a crashed experiment to fix.
        """
        with self._lock:
            thread = self._threads.get(experiment_id) if feedback else None
        if thread is not None:
            thread["messages"].append({"role": "user", "content": self._refusal(thread, feedback[-1][1])})
        else:  # a first ask, or a refusal of an answer given in another conversation (prefetched)
            text = request_text(history, self.metric, self.direction, running, repair)
            if feedback:
                text += f"\n\nAn earlier proposal ({feedback[-1][0].description}) was refused: {feedback[-1][1]}"
            thread = {"messages": [{"role": "user", "content": text}]}
        started = time.monotonic()
        try:
            message, tokens = self._call(system_blocks(self.program_text, base_files, self.editable),
                                         thread["messages"])
        except Unavailable as exc:
            return self._offline(base_files, history, device, experiment_id, avoid, base_commit, str(exc))
        thread["messages"].append({"role": "assistant", "content": _replayable(message.content)})
        thread["tool_id"] = next((b.id for b in message.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
        with self._lock:
            self._threads[experiment_id] = thread
            for old in sorted(self._threads)[:-4]:  # a night's conversations are not all kept
                del self._threads[old]
        usd, known = cost_usd(self.model, tokens)
        meta = {"proposer": self.name, "model": self.model, "tokens": tokens, "usd": usd, "price_known": known,
                "seconds": round(time.monotonic() - started, 2), "warnings": []}
        if not known:
            meta["warnings"].append(f"no price listed for {self.model}: costed at the dearest model's rates")
        if message.stop_reason == "max_tokens":
            meta["warnings"].append("the answer was cut at max_tokens")
        try:
            description, rationale, files = self._read(message, base_files, repair)
        except ProposalError as exc:
            return Proposal(description="(unreadable answer)", rationale="", files={}, meta=meta, error=str(exc))
        if repair:
            meta["repair_of"] = int(repair["id"])
        return Proposal(description=description, rationale=rationale, files=files, meta=meta)

    # ---- the answer -----------------------------------------------------------------------

    def _read(self, message, base_files, repair):
        start = dict(repair["files"]) if repair else dict(base_files)
        tool = next((b for b in message.content if b.type == "tool_use" and b.name == TOOL_NAME), None)
        if tool is not None:
            description, rationale, changed, _ = files_from_input(tool.input, start)
        else:
            text = "\n".join(b.text for b in message.content if b.type == "text")
            description, rationale, changed, _ = files_from_text(text, start)
        files = {**start, **changed}
        # what differs from the base the experiment is committed on (a repair carries its crashed change)
        return description, rationale, {p: t for p, t in files.items() if t != base_files.get(p)}

    def _refusal(self, thread, reason):
        if thread.get("tool_id"):
            return [{"type": "tool_result", "tool_use_id": thread["tool_id"], "is_error": True,
                     "content": refusal_text(reason)}]
        return refusal_text(reason)

    # ---- the API --------------------------------------------------------------------------

    def _call(self, system, messages):
        """(Message, tokens) with bounded retries; Unavailable when the API cannot answer."""
        tokens, waited, failures = {}, 0.0, []
        while True:
            try:
                message = self.client.messages.create(
                    model=self.model, max_tokens=self.max_tokens, system=system, tools=[TOOL],
                    messages=messages, timeout=self.timeout)
                return message, add_tokens(tokens, tokens_of(message.usage))
            except anthropic.AuthenticationError:
                raise BotError("the Anthropic API refused the key (401): set ANTHROPIC_API_KEY to a valid key "
                               "(console.anthropic.com → API keys), or set `proposer: offline`") from None
            except anthropic.PermissionDeniedError as exc:
                raise BotError(f"the Anthropic API denied this key access (403: {_said(exc)}): check the key's "
                               "workspace and model access, or set `proposer: offline`") from None
            except anthropic.NotFoundError as exc:
                raise BotError(f"the Anthropic API does not know model {self.model!r} (404: {_said(exc)}): set "
                               "`model:` in autoresearch.yaml to a current Claude model") from None
            except (*_RETRYABLE, anthropic.APIStatusError) as exc:
                status = getattr(exc, "status_code", None)
                if isinstance(exc, anthropic.APIStatusError) and not isinstance(exc, _RETRYABLE) and status != 529:
                    raise Unavailable(f"the API refused the request ({status}: {_said(exc)})") from None
                failures.append(_describe(exc))
                if len(failures) >= self.api_attempts:
                    raise Unavailable(f"{len(failures)} API attempts failed: {'; '.join(failures)}") from None
                wait = _retry_after(exc)
                if wait is None:
                    wait = min(2.0 ** len(failures), 30.0)
                if waited + wait > self.max_wait:
                    raise Unavailable(f"the API asked to wait {wait:g} s, beyond the {self.max_wait:g} s allowed "
                                      f"(after: {'; '.join(failures)})") from None
                self.warn(f"the Anthropic API failed ({failures[-1]}); retrying in {wait:g} s")
                self.sleep(wait)
                waited += wait

    def _offline(self, base_files, history, device, experiment_id, avoid, base_commit, why):
        self.warn(f"proposing experiment {experiment_id:04d} with the offline proposer: {why}")
        proposal = self.fallback.propose(base_files, history, device=device, experiment_id=experiment_id,
                                         avoid=avoid, base_commit=base_commit)
        meta = dict(proposal.meta or {}, proposer=f"{self.fallback.name} (fallback)",
                    warnings=[f"the Anthropic API was unavailable ({why}); the offline proposer stood in"])
        return Proposal(proposal.description, proposal.rationale, proposal.files, proposal.change, meta=meta)


def _replayable(content):
    """The assistant's blocks as request params, thinking included (the API wants it back as is)."""
    out = []
    for block in content:
        if block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            out.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        elif block.type == "thinking":
            out.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif block.type == "redacted_thinking":
            out.append({"type": "redacted_thinking", "data": block.data})
    return out or [{"type": "text", "text": "(no answer)"}]


def _retry_after(exc):
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers.get(name)) * scale)
        except (TypeError, ValueError):
            continue
    return None


def _said(exc):
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str((body.get("error") or {}).get("message") or body)[:200]
    return str(exc)[:200]


def _describe(exc):
    if isinstance(exc, anthropic.APITimeoutError):
        return "timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "could not connect"
    return f"{getattr(exc, 'status_code', '?')} {_said(exc)}"
