"""`bot command --event PATH`: act on one `issue_comment` event (a slash command on a bot PR).

Order: ignore what is not ours (bot.github.commands.ignore_reason) and PRs without a marker; read the
commenter's permission (collaborator-permission endpoint); someone without write gets an answer
only for a well-formed command on a PR the bot opened (a refusal), never for a parse error or
on anyone else's PR. Then 👀, check the marker can be trusted (bot.github.commands.trust_problem), act,
🚀 when done; 😕 and a reply saying why when refused or failed. Replies carry a marker keyed by
the comment id, and ledger rows the comment id, so a redelivered event never acts twice.
"""

import datetime
import os
import tempfile
from pathlib import Path

from bot.decide import CONFIRM, DISCARD, KEEP, Decision, decide_runs
from bot.errors import BotError, RepoError
from bot.github import commands, messages
from bot.github.client import ProtectedError, StaleError
from bot.github.publisher import STATUS_LABEL


class Refused(BotError):
    """A command that is understood but not carried out (the reply says why and what to do)."""


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class CommandHandler:
    def __init__(self, gh, git, config, ledger, publisher, loop, bot_login="github-actions[bot]", events=None):
        self.gh, self.git, self.config, self.ledger = gh, git, config, ledger
        self.publisher, self.loop, self.bot_login = publisher, loop, bot_login
        self.events = events or (lambda kind, **facts: None)
        self.dispatching = False  # `bot command --queue --dispatch`: a run is started right after recording

    def reply(self, number, comment_id, kind, text):
        key = f"{kind}-{comment_id}"
        self.gh.comment_once(number, messages.comment(kind, text, key), key)

    def handle(self, event, queue=False):
        """Return (outcome, detail): ignored, refused, failed, queued or done.

        queue=True: a retry or revert (GPU work) is recorded on the ledger branch and done by
        the next `bot run` (`drain`), so a command is never lost to a cancelled pending job."""
        reason = commands.ignore_reason(event, self.bot_login)
        if reason:
            return "ignored", reason
        number, comment = event["issue"]["number"], event["comment"]
        pr = self.gh.get_pr(number)
        data = messages.parse_marker(pr.body)
        if data is None:
            return "ignored", f"#{number} is not an autoresearch experiment PR"
        login = comment["user"]["login"]
        permission, role = self.gh.permission(login)
        may = commands.may_command(permission, role)
        try:
            command = commands.parse(comment["body"])
        except commands.CommandError as exc:
            if not may:  # answering would let anyone make the bot speak
                return "ignored", f"not a valid command, from {login} without write permission"
            self.gh.react(number, comment["id"], "confused")
            self.reply(number, comment["id"], "refused", str(exc))
            return "refused", str(exc)
        if command is None:
            return "ignored", "no command"
        problem = self._trust_problem(pr, data)
        if problem and not may:
            return "ignored", f"#{number}: {problem}; {login} has no write permission"
        self.gh.react(number, comment["id"], "eyes")
        allowed, why = commands.authorize(command, permission, role)
        if not allowed:
            self.gh.react(number, comment["id"], "confused")
            self.reply(number, comment["id"], "refused", f"@{login} {why}")
            return "refused", why
        if problem:
            self.gh.react(number, comment["id"], "confused")
            self.reply(number, comment["id"], "refused", messages.untrusted_reply(number, problem))
            return "refused", f"the marker on #{number} is not trusted: {problem}"
        if queue and command.name in QUEUED:
            return self._enqueue(pr, data, command, comment)
        return self._run(pr, data, command, comment)

    def _trust_problem(self, pr, data):
        return commands.trust_problem(self.gh.pr_facts(pr), data, self.bot_login, self.config.branches["experiment"])

    def _run(self, pr, data, command, comment):
        done = self._done_for(comment["id"], command.name)
        if done is not None:  # a redelivered event (Actions re-run, webhook retry): once is enough
            return "done", f"already done for comment {comment['id']}: {done}"
        try:
            detail = getattr(self, f"do_{command.name}")(pr, data, command, comment)
        except Refused as exc:
            self.gh.react(pr.number, comment["id"], "confused")
            self.reply(pr.number, comment["id"], "refused", str(exc))
            return "refused", str(exc)
        except BotError as exc:
            self.gh.react(pr.number, comment["id"], "confused")
            self.reply(pr.number, comment["id"], "failed", f"`/autoresearch {command.name}` failed: {exc}")
            return "failed", str(exc)
        self.gh.react(pr.number, comment["id"], "rocket")
        return "done", detail

    def _done_for(self, comment_id, name):
        """The ledger row this comment already produced (retry, revert, try, reject), or None."""
        if name not in ("retry", "revert", "try", "reject") or comment_id is None:
            return None
        row = next((r for r in self.ledger.read() if r.get("comment_id") == comment_id and r.get("kind") == name), None)
        return None if row is None else f"{name} recorded as {int(row['id']):04d}"

    # ---- the request queue (on the ledger branch) ------------------------------------------

    def _enqueue(self, pr, data, command, comment):
        records = self.ledger.read()
        if not any(r.get("kind") == "request" and r.get("comment_id") == comment["id"] for r in records):
            self.ledger.append({"id": next_id(records), "kind": "request", "status": "note", "command": command.name,
                                "argument": command.argument, "pr": pr.number, "comment_id": comment["id"],
                                "by": comment["user"]["login"], "finished_at": _now()})
        if self.dispatching:  # the experiment workflow is started right after this reply
            minutes = round(float(self.config.budget_seconds) * int(self.config.max_samples) / 60) + 10
            when = (f"Queued: a run starts now and does `/autoresearch {command.name}` first; its result comes as a "
                    f"comment in about {minutes} minutes (later if a night's run holds this tag: it goes first). "
                    "🚀 when done.")
        else:
            when = f"Queued: the next `bot run` does `/autoresearch {command.name}` first (🚀 when done)."
        self.reply(pr.number, comment["id"], "queued", when)
        return "queued", f"{command.name} for #{pr.number}"

    def drain(self):
        """Do the queued requests, oldest first; each is done once even across kills."""
        outcomes = []
        for request in pending_requests(self.ledger.read()):
            pr = self.gh.get_pr(request["pr"])
            data = messages.parse_marker(pr.body)
            comment = {"id": request["comment_id"], "user": {"login": request["by"]}, "request": request["id"]}
            command = commands.Command(request["command"], request.get("argument", ""))
            problem = self._trust_problem(pr, data) if data else "no experiment marker"
            outcome = ("failed", problem) if problem else self._run(pr, data, command, comment)
            records = self.ledger.read()
            self.ledger.append({"id": next_id(records), "kind": "handled", "status": "note", "request": request["id"],
                                "outcome": outcome[0], "detail": outcome[1], "finished_at": _now()})
            outcomes.append(outcome)
        if outcomes:
            self.publisher.prepare()  # the tracking branch may have moved: start the loop from it
        return outcomes

    # ---- commands -------------------------------------------------------------------------

    def do_help(self, pr, data, command, comment):
        self.reply(pr.number, comment["id"], "help", "\n".join(f"- {c}" for c in messages.COMMANDS_HELP))
        return "help posted"

    def _direction(self, pr, data, command, comment, kind):
        records = self.ledger.read()
        text, cut = commands.clip(command.argument)
        self.ledger.append({"id": next_id(records), "kind": kind, "status": "note", "about": data["id"],
                            "text": text, "by": comment["user"]["login"], "pr": pr.number,
                            "comment_id": comment["id"], "finished_at": _now()})
        self.reply(pr.number, comment["id"], kind, messages.recorded_note(kind, text, cut))
        return f"{kind} recorded"

    def do_reject(self, pr, data, command, comment):
        return self._direction(pr, data, command, comment, "reject")

    def do_try(self, pr, data, command, comment):
        return self._direction(pr, data, command, comment, "try")

    def do_revert(self, pr, data, command, comment):
        """Undo a kept change on the tracking head, measured and recorded as an experiment.

        A person asked for it, so it is applied whatever it measures (unless the run crashes)."""
        if data.get("status") != KEEP or not pr.merged:
            raise BotError(f"only a kept, merged change can be reverted; #{pr.number} is {data.get('status')}")
        head = self.publisher.prepare()
        records = self.ledger.read()
        if any(r.get("kind") == "revert" and r.get("reverts") == data["id"] and r["status"] == KEEP for r in records):
            return "already reverted"
        reference = next((r for r in reversed(records) if r.get("status") == KEEP and r.get("commit") == head), None)
        exp_id = next_id(records)
        commit = self._reapply(data["commit"], data["parent"], head,
                               f"Revert {data.get('description')}\n\nrevert of autoresearch experiment {int(data['id']):04d}")
        result, key = self.loop.remeasure(exp_id, commit, head)
        status = KEEP if result.status == "ok" and result.metric is not None else "crash"
        delta = result.metric - reference["metric"] if reference and status == KEEP else None
        reason = (f"reverted by @{comment['user']['login']}" + (f"; {delta:+.6f} vs the head" if delta is not None else "")
                  if status == KEEP else f"the revert crashed: {result.reason}; nothing changed")
        branch = f"{self.config.branches['experiment']}{exp_id:04d}"
        self.publisher.push(branch, commit)
        self.ledger.append({"id": exp_id, "kind": "revert", "reverts": data["id"], "commit": commit, "parent": head,
                            "branch": branch, "description": f"revert {data.get('description')}", "status": status,
                            "reason": reason, "evidence": {"delta": delta}, "metric_name": self.config.metric,
                            "metric": result.metric if status == KEEP else None, "pr": pr.number,
                            "key": dict(key, device=result.device), "finished_at": _now(),
                            "request": comment.get("request"), "comment_id": comment.get("id"),
                            "log_tail": result.log_tail if status != KEEP else ""})
        if status != KEEP:
            raise BotError(reason)
        self.gh.fast_forward(self.publisher.tracking, commit, head)
        self.gh.set_status(pr, "kept", extra=("reverted",))
        self.reply(pr.number, comment["id"], "reverted",
                   f"Reverted on `{self.publisher.tracking}` as experiment {exp_id:04d} ({commit[:7]}): "
                   f"{self.config.metric} {result.metric:.6f}" + (f" ({delta:+.6f} vs the head)" if delta is not None else ""))
        self.publisher.update_report(self.ledger.read())
        return f"reverted as {exp_id:04d}"

    def _decide_pooled(self, result, samples, reference, records, key):
        """The configured rule on every sample of this diff on this base, never the last one alone:
        retrying until lucky only adds evidence. Still inside the noise → discard for now."""
        from bot.replicates import head_values, params_from, segment_sigma
        from bot.rows import same_segment

        segment = [r for r in records if same_segment(r, {k: v for k, v in key.items() if k != "device"})]
        decision = decide_runs(result.status, samples, head_values(reference, records), segment_sigma(segment),
                               self.config.direction, self.config.decision_rule, params_from(self.config),
                               result.reason)
        if decision.status == CONFIRM:
            return Decision(DISCARD, decision.reason + " — `/autoresearch retry` again adds a sample",
                            decision.evidence)
        return decision

    def do_retry(self, pr, data, command, comment):
        """Re-apply the change on the current tracking head, measure, pool, decide, publish."""
        if pr.merged:  # its change is in the tracking head already: nothing to measure against
            raise Refused(messages.already_merged_reply(pr.number, self.publisher.tracking))
        head = self.publisher.prepare()
        self.publisher.ensure_commit(pr.number, data["commit"])
        records = self.ledger.read()
        reference = next((r for r in reversed(records) if r.get("status") == KEEP and r.get("commit") == head), None)
        if reference is None:
            raise BotError(f"the tracking head {head[:7]} has no measurement in the ledger: run `bot run` first")
        same_base = data["parent"] == head
        commit = data["commit"] if same_base else self._reapply(
            data["parent"], data["commit"], head,
            f"{data.get('description')}\n\nretry of autoresearch experiment {int(data['id']):04d} on {head[:7]}")
        earlier = [s for s in data.get("samples") or [data.get("metric")] if s is not None] if same_base else []
        result, key = self.loop.remeasure(data["id"], commit, head)
        samples = earlier + ([result.metric] if result.status == "ok" and result.metric is not None else [])
        mean = sum(samples) / len(samples) if samples else None
        decision = self._decide_pooled(result, samples, reference, records, key)
        retries = list(data.get("retries") or [])
        retries.append({"status": decision.status, "reason": decision.reason, "samples": samples, "commit": commit,
                        "base": head, "by": comment["user"]["login"]})
        record = dict(data, id=next_id(records), kind="retry", retry_of=data["id"], commit=commit, parent=head,
                      status=decision.status, reason=decision.reason, evidence=dict(decision.evidence, samples=samples),
                      metric=mean, samples=samples, pr=pr.number, key=dict(key, device=result.device),
                      finished_at=_now(), log_tail=result.log_tail if decision.status != KEEP else "",
                      request=comment.get("request"), comment_id=comment.get("id"), branch=pr.head.ref)
        if commit != data["commit"] or self.gh.branch_sha(pr.head.ref) is None:
            self.publisher.move_pr_head(pr, data["commit"], commit, len(data.get("retries") or []) + 1)
        if decision.status == KEEP and self.gh.branch_sha(self.publisher.tracking) != head:
            raise BotError(f"measured a keep on {head[:7]}, but {self.publisher.tracking} moved meanwhile; nothing "
                           "was recorded. Comment `/autoresearch retry` to re-evaluate it on the new head.")
        self.ledger.append(record)
        # the same body as the night's PRs: the whole diff when small, which direction is better
        body = self.publisher.body(dict(record, id=data["id"], parent=head, commit=commit), reference, retries=retries)
        if decision.status == KEEP and pr.state == "closed":
            self.gh.update_pr(pr, state="open")
        self.gh.update_pr(pr, body=body)
        self.gh.set_status(pr, STATUS_LABEL[decision.status])
        if decision.status == KEEP:
            try:
                self.gh.fast_forward(self.publisher.tracking, commit, head)
            except ProtectedError:
                raise  # names the rule and the fix; `bot run` finishes the merge once it is fixed
            except StaleError as exc:
                self._not_merged(pr, record, head, exc)
        else:
            self.gh.update_pr(pr, state="closed")
        self.publisher.update_report(self.ledger.read())
        return f"retry {len(retries)}: {decision.status} ({decision.reason})"

    def _reapply(self, old, new, head, message):
        """The change old → new applied to `head`, as a new commit (a revert passes new → old)."""
        patch = self.git.git("diff", "--binary", old, new)
        with tempfile.TemporaryDirectory(prefix="autoresearch-retry-") as scratch:
            env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            Path(scratch, "change.patch").write_text(patch + "\n", encoding="utf-8")
            self.git.git("read-tree", head, env=env)
            try:
                self.git.git("apply", "--cached", "--3way", str(Path(scratch, "change.patch")), env=env)
            except RepoError as exc:
                files = sorted({line[2:].strip(" '") for line in str(exc).splitlines() if line.startswith("U ")})
                where = ", ".join(files) or str(exc).splitlines()[-1][:300]
                raise BotError(f"the change no longer applies to the tracking head {head[:7]}: it conflicts in "
                               f"{where} with changes kept since it was measured on {old[:7]}. "
                               "Nothing was run; `/autoresearch try <idea>` asks the proposer to redo it on the new head") from None
            tree = self.git.git("write-tree", env=env)
        return self.git.git("commit-tree", tree, "-p", head, "-m", message)

    def _not_merged(self, pr, record, head, exc):
        """A recorded keep whose fast-forward failed: the ledger must end up saying what GitHub has."""
        now = self.gh.branch_sha(self.publisher.tracking)
        if now == head:  # the ref write failed but nothing moved: reconcile in the next `bot run` merges it
            raise BotError(f"kept and recorded, but {self.publisher.tracking} could not be fast-forwarded yet ({exc}); "
                           "the next `bot run` finishes the merge") from None
        reason = f"kept on {head[:7]}, but {self.publisher.tracking} moved to {str(now)[:7]} before it was merged"
        self.ledger.append(dict(record, id=next_id(self.ledger.read()), status=DISCARD, reason=reason))
        self.gh.set_status(pr, STATUS_LABEL[DISCARD])
        self.gh.update_pr(pr, state="closed")
        raise BotError(f"not merged: {reason}. Comment `/autoresearch retry` to re-evaluate it on the new head.") from None


QUEUED = ("retry", "revert")


def pending_requests(records):
    """Queued requests with neither a `handled` row nor a result row (a kill after the result)."""
    done = {r.get("request") for r in records if r.get("kind") in ("handled", "retry", "revert")}
    return [r for r in records if r.get("kind") == "request" and r["id"] not in done]


def next_id(records):
    from bot.ledger import next_experiment_id

    return next_experiment_id(records)
