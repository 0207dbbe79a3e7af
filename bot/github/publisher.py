"""GitHub mode: each experiment as a pull request into the tracking branch; winners merged by
fast-forwarding the tracking ref; a rolling report PR from the tracking branch.

The loop calls `started` when an experiment's commit exists and `decided` after its ledger row
is written. Each step first looks for what an earlier (killed) run may have done, so rerunning
creates no duplicate; `reconcile` finishes the steps a killed run left undone.
"""

from bot.errors import BotError, RepoError
from bot.github import messages
from bot.github.client import (
    GitHubError,
    ProtectedError,
    StaleError,
    protection_refusal,
)

STATUS_LABEL = {"keep": "kept", "discard": "discarded", "crash": "crashed"}
RECONCILE_LAST = 3  # a kill leaves at most the last experiment half-published


class Publisher:
    def __init__(self, gh, git, config, remote="origin", push_env=None, kept_only=False, events=None,
                 review_bound=None, delete_closed_branches=False):
        self.gh, self.git, self.config = gh, git, config
        # A closed PR keeps its commits under refs/pull/N/head, so the branch itself may go.
        self.delete_closed_branches = delete_closed_branches
        self.review_bound = review_bound  # relative gain above which a keep waits for a human
        self.remote, self.push_env, self.kept_only = remote, push_env or {}, kept_only
        self.events = events or (lambda kind, **facts: None)
        self.tracking = config.branches["tracking"]
        self.exp_prefix = config.branches["experiment"]
        self.default = None
        self.said_no_drafts = False  # the draft fallback is logged once per run

    # ---- set-up ---------------------------------------------------------------------------

    def prepare(self):
        """Create the tracking branch on GitHub if missing; make the local one match it."""
        self.default = self.gh.default_branch()
        head = self.gh.branch_sha(self.tracking)
        if head is None:
            start = self.gh.branch_sha(self.default)
            if start is None:
                raise BotError(f"the default branch {self.default} has no commits on GitHub: push your repository first")
            head = self.gh.create_branch(self.tracking, start)
            self.events("tracking-created", branch=self.tracking, commit=head)
        self._fetch()
        self._sync_local(head)
        return head

    def _fetch(self):
        # Experiment branches of earlier runs reserve their ids; the tracking head is needed locally.
        self.git.git("fetch", "--quiet", self.remote, f"+refs/heads/{self.tracking}:refs/remotes/{self.remote}/{self.tracking}",
                     f"+refs/heads/{self.exp_prefix}*:refs/heads/{self.exp_prefix}*", env=self.push_env)

    def _sync_local(self, head):
        local = self.git.branch_sha(self.tracking)
        if local == head:
            return
        if self.git.current_branch() == self.tracking:
            self.git.git("merge", "--ff-only", "--quiet", head)
        else:
            self.git.git("update-ref", f"refs/heads/{self.tracking}", head)

    def push(self, branch, commit):
        try:
            self.git.git("push", "--quiet", self.remote, f"{commit}:refs/heads/{branch}", env=self.push_env)
        except RepoError as exc:
            refused = protection_refusal(str(exc), branch)
            if refused:
                raise ProtectedError(refused) from None
            if self.gh.branch_sha(branch) != commit:  # pushed already by a killed run: fine
                raise

    def move_pr_head(self, pr, old, commit, attempt):
        """Move the PR's own head branch (never a marker's `branch`: a marker is only data) from
        `old` to `commit`; `old` stays reachable under an attempt ref.

        GitHub reopens a closed PR only while its head branch exists and descends from the head
        it had when closed, so a deleted branch is first restored at that head, and a closed PR
        is reopened before its head moves (the caller closes it again unless it is kept)."""
        branch = pr.head.ref
        if self.gh.branch_sha(branch) is None:  # deleted (retention): restore it at the PR's head
            self.push(branch, old)
        if commit == old:
            return
        if pr.state == "closed":
            self.gh.update_pr(pr, state="open")
        self.push(f"{branch}-attempt{attempt}", old)
        try:
            self.git.git("push", "--quiet", f"--force-with-lease=refs/heads/{branch}:{old}",
                         self.remote, f"{commit}:refs/heads/{branch}", env=self.push_env)
        except RepoError as exc:
            refused = protection_refusal(str(exc), branch)
            if refused:
                raise ProtectedError(refused) from None
            raise

    # ---- one experiment -------------------------------------------------------------------

    def started(self, exp_id, branch, commit, base, description, rationale=""):
        """Push the experiment branch and open its draft PR (label `running`); return its number."""
        self.push(branch, commit)
        self.events("gh-step", step="pushed", id=exp_id)
        if self.kept_only:
            return None
        record = {"id": exp_id, "commit": commit, "parent": base, "branch": branch,
                  "description": description, "rationale": rationale, "status": "running"}
        pr = self.gh.ensure_pr(branch, self.tracking, messages.pr_title(record), self.body(record, None, running=True),
                               draft=True)
        if self.gh.drafts is False and not self.said_no_drafts:
            self.said_no_drafts = True
            self.events("warning", message="GitHub refuses draft PRs in this repository (a private repository on a "
                        "Free or Pro plan): experiment PRs open as normal PRs labelled `running` until decided")
        self.events("gh-step", step="pr-opened", id=exp_id, pr=pr.number)
        self.gh.set_status(pr, "running")
        return pr.number

    def guard(self, record, reference):
        """A keep whose relative gain exceeds `review_bound` becomes a discard held for review."""
        gain = (record.get("evidence") or {}).get("improvement")
        before = (reference or {}).get("metric")
        if (record["status"] != "keep" or not self.review_bound or not isinstance(gain, (int, float))
                or not before or gain / abs(before) <= self.review_bound):
            return record
        evidence = dict(record.get("evidence") or {}, needs_review=True, review_bound=self.review_bound)
        return dict(record, status="discard", evidence=evidence,
                    reason=f"needs review: {gain / abs(before):.1%} better, above the {self.review_bound:.1%} bound "
                           f"for automatic merging ({record['reason']})")

    def decided(self, record, reference, records):
        self.finish(record, reference)
        self.update_report(records)

    def finish(self, record, reference, strict=True):
        """Body, labels, then merge (keep) or close (discard, crash). Safe to repeat.

        A keep whose base is no longer the tracking head is not merged: the PR says so; with
        `strict` the run stops (its next experiment would build on a change GitHub lacks)."""
        if record.get("kind") != "experiment" or (self.kept_only and record["status"] != "keep"):
            return
        pr = self.gh.find_pr(record["branch"], self.tracking)
        body = self.body(record, reference)
        if pr is None:  # kept-only mode, or the PR was never opened
            self.push(record["branch"], record["commit"])
            pr = self.gh.ensure_pr(record["branch"], self.tracking, messages.pr_title(record), body)
        self.gh.update_pr(pr, title=messages.pr_title(record), body=body)
        self.gh.mark_ready(pr)
        if (record.get("evidence") or {}).get("needs_review"):
            self.gh.set_status(pr, "needs-review")  # left open for a human: retry merges it if it holds
            key = f"needs-review-{record['id']}"
            self.gh.comment_once(pr.number, messages.needs_review_comment(record, self.review_bound), key)
            return
        self.gh.set_status(pr, STATUS_LABEL[record["status"]])
        self.events("gh-step", step="labelled", id=record["id"], pr=pr.number)
        if record["status"] == "keep":
            try:
                self.gh.fast_forward(self.tracking, record["commit"], record["parent"])
            except StaleError as exc:
                self.gh.comment_once(pr.number, messages.comment(
                    "stale", f"Not merged: {exc}. Comment `/autoresearch retry` to re-evaluate it on the current head.",
                    f"stale-{record['id']}"), f"stale-{record['id']}")
                self.events("warning", message=f"experiment {record['id']:04d} kept but not merged: {exc}")
                if not strict:
                    return
                raise BotError(f"experiment {record['id']:04d} was kept but {exc}; rerun `bot run` to continue "
                               "from the tracking branch as it is on GitHub") from None
            self.events("gh-step", step="merged", id=record["id"], pr=pr.number)
        else:
            self.gh.update_pr(pr, state="closed")
            self.events("gh-step", step="closed", id=record["id"], pr=pr.number)
            if self.delete_closed_branches and self.gh.branch_sha(record["branch"]) is not None:
                self.git.git("push", "--quiet", self.remote, "--delete", record["branch"], env=self.push_env)

    def body(self, record, reference, running=False, retries=()):
        """The experiment PR's body, with the whole diff when small and a compare link otherwise."""
        base, commit = record["parent"], record["commit"]
        return messages.pr_body(record, reference, self.git.diff(base, commit, stat=True),
                                "" if running else record.get("log_tail") or "", running=running, retries=retries,
                                diff=self.git.diff(base, commit), diff_url=self.link(f"compare/{base}...{commit}"),
                                direction=self.config.direction)

    def link(self, path):
        """A page of this repository on GitHub (never an outside host: repositories may be private)."""
        return f"{self.gh.web_url()}/{path}"

    def update_report(self, records):
        """Open (once there is a kept change) or update the report PR: tracking → default.

        A merged report PR is replaced by a new one, and a closed one reopened, at the next kept
        change (its marker names the last kept experiment it showed); until then it is left alone."""
        kept = [r for r in records if r.get("kind") == "experiment" and r["status"] == "keep"]
        if not kept:
            return None
        links = {r["id"]: r.get("pr") for r in records}
        title = messages.report_title(self.config.tag, records, self.config.direction)
        body = messages.report_body(self.config.tag, records, links, self.config.metric,
                                    table_url=self.link(f"blob/{self.config.branches['ledger']}/results.tsv"),
                                    direction=self.config.direction)
        default = self.default or self.gh.default_branch()
        pr = self.gh.find_pr(self.tracking, default)
        if pr is not None and pr.state != "open":
            shown = (messages.parse_marker(pr.body, messages.REPORT_MARKER) or {}).get("kept")
            if shown == messages.last_kept(records):
                return pr.number  # nothing kept since it was merged or closed
            pr = None if pr.merged else self._reopen(pr, title, body)
        if pr is None:
            try:
                pr = self.gh.ensure_pr(self.tracking, default, title, body, state="open")
            except GitHubError as exc:
                if "No commits between" not in str(exc):
                    raise
                return None  # the default branch has every kept change already
            self.events("gh-step", step="report-opened", pr=pr.number)
        self.gh.update_pr(pr, title=title, body=body)
        return pr.number

    def _reopen(self, pr, title, body):
        """Reopen a closed report PR (None when GitHub refuses: a new one is opened instead)."""
        try:
            return self.gh.update_pr(pr, title=title, body=body, state="open")
        except GitHubError as exc:
            self.events("warning", message=f"the closed report PR #{pr.number} could not be reopened ({exc}); "
                        "opening a new one")
            return None

    # ---- after a kill ---------------------------------------------------------------------

    def reconcile(self, records):
        """Finish what a killed run left: the last experiments' PRs and orphaned running PRs."""
        experiments = [r for r in records if r.get("kind") == "experiment"]
        for record in experiments[-max(RECONCILE_LAST, int(self.config.parallel) + 1):]:  # a batch in flight
            if self.kept_only and record["status"] != "keep":
                continue
            before = [r for r in records if r["status"] == "keep" and r["commit"] == record.get("parent")]
            pr = self.gh.find_pr(record["branch"], self.tracking)
            if pr is None or not self._finished(pr, record):
                self.finish(record, before[-1] if before else None, strict=False)
        recorded = {r["id"] for r in records}
        for branch in self.git.branches(self.exp_prefix):
            suffix = branch.rsplit("/", 1)[1]
            if suffix.isdigit() and int(suffix) not in recorded:
                pr = self.gh.find_pr(branch, self.tracking)
                if pr is not None and pr.state == "open":
                    self.gh.update_pr(pr, state="closed")
                    self.gh.comment_once(pr.number, messages.comment(
                        "interrupted", "The bot stopped before this experiment finished, so it has no result. "
                        "Nothing was merged; the next run proposes again.", f"interrupted-{suffix}"),
                        f"interrupted-{suffix}")
        self._merge_recorded_keep(records)
        if records:
            self.update_report(records)
        head = self.gh.branch_sha(self.tracking)
        self._fetch()
        self._sync_local(head)

    def _merge_recorded_keep(self, records):
        """Put the ledger's last keep on GitHub's tracking branch when GitHub's tracking is still
        at its parent: a retry or revert that failed or was killed between its keep row and the
        fast-forward (the loop then moves the local branch, which alone would diverge)."""
        kept = [r for r in records if r.get("status") == "keep" and r.get("parent") and r.get("commit")]
        if kept and self.gh.branch_sha(self.tracking) == kept[-1]["parent"]:
            self.gh.fast_forward(self.tracking, kept[-1]["commit"], kept[-1]["parent"])
            self.events("gh-step", step="merged", id=kept[-1]["id"], pr=kept[-1].get("pr"))

    def ensure_commit(self, number, sha):
        """Fetch a PR's commit (refs/pull/N/head) when this clone lacks it (its branch may be gone)."""
        if self.git.resolve(sha) is None:
            self.git.git("fetch", "--quiet", self.remote, f"refs/pull/{number}/head", env=self.push_env)
        if self.git.resolve(sha) is None:
            raise BotError(f"commit {sha[:7]} of #{number} is not on {self.remote}: it cannot be re-evaluated")

    def _finished(self, pr, record):
        labels = self.gh.labels(pr.number)
        if (record.get("evidence") or {}).get("needs_review"):
            return "needs-review" in labels
        if STATUS_LABEL[record["status"]] not in labels or "running" in labels or pr.draft:
            return False
        return pr.merged if record["status"] == "keep" else pr.state == "closed"
