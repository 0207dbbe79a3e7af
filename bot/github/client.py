"""The only module that talks to GitHub (through PyGithub), and only in the ways the bot needs.

Writes are idempotent: every create is preceded by a lookup (by branch, label name or hidden
marker), and a create that fails with a retryable error is looked up again before it is
retried, because GitHub may have done it before the error reached us. PyGithub's GithubRetry
handles idempotent methods (and 403 secondary limits and 429 with Retry-After); POST and PATCH
are retried here, where the lookup can run first. Content-creating requests are paced
(GitHub allows about 80 a minute, 500 an hour) by PyGithub's throttle.
"""

import time

from bot.errors import BotError

STATUS_LABELS = {
    "autoresearch": ("5319e7", "Opened by autoresearch-bot"),
    "running": ("fbca04", "autoresearch: evaluation in flight"),
    "kept": ("0e8a16", "autoresearch: improved the metric; merged into the tracking branch"),
    "discarded": ("c5def5", "autoresearch: did not improve the metric; closed, diff kept"),
    "crashed": ("d93f0b", "autoresearch: the run failed; closed, log tail in the body"),
    "gate-failed": ("b60205", "autoresearch: refused by a gate before or after the run"),
    "needs-review": ("e99695", "autoresearch: gain too large to merge without a human"),
    "reverted": ("cccccc", "autoresearch: kept, then undone on the tracking branch by /autoresearch revert"),
}
EXCLUSIVE = ("running", "kept", "discarded", "crashed", "gate-failed")
# GitHub's answer to a draft PR in a private repository on a Free or Pro plan (422).
DRAFTS_REFUSED = "draft pull requests are not supported"


class GitHubError(BotError):
    """GitHub refused or kept failing a request (`status`: its HTTP status, when it answered)."""

    def __init__(self, message, status=None, data=None):
        super().__init__(message)
        self.status, self.data = status, data


class StaleError(GitHubError):
    """A ref moved under us (compare-and-swap lost): re-read and decide again."""


class ProtectedError(GitHubError):
    """A branch protection rule or ruleset refused a write to one of the bot's branches."""


def protection_refusal(text, branch):
    """The one clear error for a write that a rule refused, from GitHub's answer `text` (a git
    push's stderr, or a REST 422 message), or None when `text` is some other failure.

    GitHub's pre-receive hook prints `GH006: Protected branch update failed` (branch protection)
    or `GH013: Repository rule violations found` (rulesets), then the rules; the REST API answers
    422 "Repository rule violations found\n\n<rules>" or "Protected branch update failed"."""
    lowered = (text or "").lower()
    if not any(mark in lowered for mark in _PROTECTION_MARKS):
        return None
    rules = []
    for line in text.splitlines():
        if line.startswith("`git ") and "failed: " in line:  # RepoError: "`git push …` failed: <stderr>"
            line = line.split("failed: ", 1)[1]
        line = line.strip().removeprefix("stderr:").strip().strip("'")  # GitPython quotes git's stderr
        line = line.removeprefix("remote:").strip().removeprefix("error:").strip().removeprefix("- ").strip()
        if line and not line.lower().startswith(_PUSH_BOILERPLATE):
            rules.append(line)
    found = "; ".join(dict.fromkeys(rules)) or "no rule named"
    return (f"GitHub refused to update `{branch}`: a branch protection rule or ruleset covers it ({found}). "
            "The bot writes its own branches (autoresearch/<tag>, autoresearch/<tag>-exp/*, "
            "autoresearch/<tag>-ledger): in Settings → Rules → Rulesets (or Settings → Branches) exclude "
            "`autoresearch/**` from that rule, or add the bot's token (GitHub Actions, or your GitHub App) "
            "to its bypass list; then rerun.")


_PROTECTION_MARKS = ("gh006", "gh013", "repository rule violations", "protected branch update failed")
_PUSH_BOILERPLATE = ("gh006", "gh013", "review all repository rules", "to ", "! [remote rejected]", "failed to push",
                     "repository rule violations found", "protected branch update failed", "hint:")


def connect(token, repository, base_url="https://api.github.com", retry_wait=60.0, timeout=30, writes_per_minute=8):
    """A PyGithub repository handle with GithubRetry (for GET/PUT/DELETE; POST/PATCH are ours).

    Writes are paced by PyGithub's own throttle: 8 a minute stays under GitHub's 500 an hour.
    """
    from github import Auth, Github, GithubRetry
    from urllib3.util.retry import Retry

    retry = GithubRetry(total=4, backoff_factor=min(1.0, retry_wait), secondary_rate_wait=retry_wait,
                        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS - {"POST", "PATCH"})
    pace = 60.0 / writes_per_minute if writes_per_minute else 0.0
    client = Github(auth=Auth.Token(token), base_url=base_url, retry=retry, timeout=timeout, per_page=100,
                    seconds_between_requests=0.0 if not writes_per_minute else 0.25, seconds_between_writes=pace)
    try:
        return client.get_repo(repository)
    except Exception as exc:  # noqa: BLE001 (any failure here has the same fix)
        raise GitHubError(f"cannot open {repository} at {base_url}: {exc}. Check GITHUB_TOKEN and the "
                          "repository name (--github OWNER/NAME or GITHUB_REPOSITORY).") from None


def _retryable(exc):
    status = getattr(exc, "status", None)
    message = str(getattr(exc, "data", "") or "").lower()
    return status in (429, 502, 503, 504) or (status or 0) >= 500 or (status == 403 and "rate limit" in message)


class GitHub:
    def __init__(self, repo, sleep=time.sleep, attempts=4, backoff=2.0):
        self.repo = repo
        self.sleep, self.attempts, self.backoff = sleep, attempts, backoff
        self._labels = set()
        self.drafts = None  # False once GitHub refused a draft PR: later PRs of this run open as normal PRs

    def _call(self, action, lookup=None, what="request"):
        """Run `action`; on a retryable error wait, check `lookup` (did it happen?), retry."""
        from github import GithubException

        for attempt in range(self.attempts):
            try:
                return action()
            except GithubException as exc:
                if not _retryable(exc) or attempt == self.attempts - 1:
                    raise GitHubError(f"GitHub refused {what}: {exc.status} {exc.data}. "
                                      "Rerun the same command: finished steps are found and skipped.",
                                      status=exc.status, data=exc.data) from None
                headers = exc.headers or {}
                wait = float(headers.get("Retry-After") or headers.get("retry-after") or self.backoff * 2 ** attempt)
                self.sleep(wait)
                found = lookup() if lookup else None
                if found is not None:
                    return found

    def _write(self, action, lookup=None, what="request"):
        return self._call(action, lookup, what)

    # ---- refs -----------------------------------------------------------------------------

    def default_branch(self):
        return self.repo.default_branch

    def branch_sha(self, branch):
        from github import GithubException

        try:
            return self._call(lambda: self.repo.get_git_ref(f"heads/{branch}").object.sha, what=f"reading {branch}")
        except GitHubError as exc:
            if "404" in str(exc):
                return None
            raise
        except GithubException:
            return None

    def create_branch(self, branch, sha):
        lookup = lambda: self.branch_sha(branch)  # noqa: E731
        if lookup() is None:
            try:
                self._write(lambda: self.repo.create_git_ref(f"refs/heads/{branch}", sha), lookup, f"creating {branch}")
            except GitHubError as exc:
                _raise_if_protected(exc, branch)
                raise
        return lookup()

    def fast_forward(self, branch, new_sha, expected_sha):
        """Move `branch` to `new_sha` only if it is at `expected_sha` (done already counts)."""
        current = self.branch_sha(branch)
        if current == new_sha:
            return
        if current != expected_sha:
            raise StaleError(f"{branch} is at {str(current)[:7]}, not {expected_sha[:7]}: the change is stale")
        ref = self.repo.get_git_ref(f"heads/{branch}")
        try:
            self._write(lambda: ref.edit(new_sha, force=False),
                        lambda: True if self.branch_sha(branch) == new_sha else None, f"fast-forwarding {branch}")
        except GitHubError as exc:
            if self.branch_sha(branch) == new_sha:
                return
            _raise_if_protected(exc, branch)
            raise StaleError(f"{branch} could not be fast-forwarded to {new_sha[:7]}: {exc}") from None

    # ---- pull requests ---------------------------------------------------------------------

    def find_pr(self, head, base=None, state="all"):
        """The PR from `head` (into `base`): the open one if any, else the newest.

        Chosen by state and number, never by list position: GitHub lists newest first."""
        owner = self.repo.owner.login
        pulls = self._call(lambda: list(self.repo.get_pulls(state=state, head=f"{owner}:{head}")), what="listing PRs")
        pulls = [p for p in pulls if base is None or p.base.ref == base]
        return max(pulls, key=lambda p: (p.state == "open", p.number)) if pulls else None

    def pulls_with_label(self, label="autoresearch"):
        return [p for p in self._call(lambda: list(self.repo.get_pulls(state="all")), what="listing PRs")
                if any(lab.name == label for lab in p.labels)]

    def get_pr(self, number):
        return self._call(lambda: self.repo.get_pull(number), what=f"reading PR #{number}")

    def ensure_pr(self, head, base, title, body, draft=False, state="all"):
        """The PR from `head` into `base` (state="open": only an open one counts), created if missing."""
        lookup = lambda: self.find_pr(head, base, state)  # noqa: E731
        found = lookup()
        if found is not None:
            return found
        return self._write(lambda: self._create_pr(head, base, title, body, draft), lookup, f"opening a PR from {head}")

    def _create_pr(self, head, base, title, body, draft):
        """GitHub refuses drafts in private repositories on Free and Pro plans (422): open a
        normal PR instead, and remember, so the rest of the run does not ask again."""
        from github import GithubException

        draft = draft and self.drafts is not False
        try:
            return self.repo.create_pull(base=base, head=head, title=title, body=body, draft=draft)
        except GithubException as exc:
            if not (draft and exc.status == 422 and DRAFTS_REFUSED in str(exc.data).lower()):
                raise
        self.drafts = False
        return self.repo.create_pull(base=base, head=head, title=title, body=body, draft=False)

    def web_url(self):
        """The repository's page (https://github.com/OWNER/NAME), for links in PR bodies."""
        return self.repo.html_url

    def update_pr(self, pr, title=None, body=None, state=None):
        changes = {k: v for k, v in (("title", title), ("body", body), ("state", state))
                   if v is not None and getattr(pr, k) != v}
        if changes and not (state and pr.merged and set(changes) == {"state"}):
            self._write(lambda: pr.edit(**changes), what=f"updating PR #{pr.number}")
        return pr

    def mark_ready(self, pr):
        """Draft → ready for review (GraphQL: the REST API cannot do it). Repeating is harmless."""
        if pr.draft:
            self._call(lambda: pr.mark_ready_for_review(), what=f"marking #{pr.number} ready")

    # ---- labels (one at a time, so labels people add survive) ------------------------------

    def ensure_label(self, name):
        from github import GithubException

        if name in self._labels:
            return
        try:
            self._call(lambda: self.repo.get_label(name), what=f"reading label {name}")
        except (GitHubError, GithubException):
            color, description = STATUS_LABELS.get(name, ("ededed", "autoresearch"))
            try:
                self._write(lambda: self.repo.create_label(name, color, description), what=f"creating label {name}")
            except GitHubError:
                self._call(lambda: self.repo.get_label(name), what=f"reading label {name}")  # created meanwhile
        self._labels.add(name)

    def labels(self, number):
        return [lab.name for lab in self._call(lambda: list(self.repo.get_issue(number).get_labels()), what="labels")]

    def set_status(self, pr, status_label, extra=()):
        """Add `autoresearch`, `status_label` and `extra`; remove the other exclusive labels."""
        current = self.labels(pr.number)
        for name in ("autoresearch", status_label, *extra):
            if name not in current:
                self.ensure_label(name)
                self._write(lambda n=name: pr.add_to_labels(n), what=f"labelling #{pr.number} {name}")
        for name in EXCLUSIVE:
            if name != status_label and name in current:
                try:
                    self._call(lambda n=name: pr.remove_from_labels(n), what=f"unlabelling #{pr.number} {name}")
                except GitHubError as exc:
                    if exc.status != 404:  # someone removed it since we read the labels: done already
                        raise

    # ---- comments, reactions, permissions ------------------------------------------------

    def comment_once(self, number, body, key_marker):
        """Post `body` unless a comment containing `key_marker` exists already."""
        issue = self._call(lambda: self.repo.get_issue(number), what=f"reading #{number}")
        lookup = lambda: next((c for c in issue.get_comments() if key_marker in (c.body or "")), None)  # noqa: E731
        found = lookup()
        if found is not None:
            return found
        return self._write(lambda: issue.create_comment(body), lookup, f"commenting on #{number}")

    def react(self, number, comment_id, content):
        comment = self._call(lambda: self.repo.get_issue(number).get_comment(comment_id), what="reading comment")
        self._write(lambda: comment.create_reaction(content), what=f"reacting {content}")

    def permission(self, login):
        """(permission, role_name) from the collaborator-permission endpoint: permission is
        admin|write|read|none (maintain reads as write, triage as read); role_name says which."""
        permission = self._call(lambda: self.repo.get_collaborator_permission(login), what=f"permission of {login}")
        role = self._call(lambda: self.repo.get_collaborator_role_name(login), what=f"role of {login}")
        return permission, role

    def pr_facts(self, pr):
        """What decides whether a PR's marker can be trusted (bot.github.commands.trust_problem)."""
        head_repo = pr.head.repo.full_name if pr.head.repo is not None else None
        return {"author": pr.user.login if pr.user is not None else None, "head_repo": head_repo,
                "repo": self.repo.full_name, "head_ref": pr.head.ref, "head_sha": pr.head.sha}

    # ---- Actions --------------------------------------------------------------------------

    def dispatch_workflow(self, workflow, ref, inputs=None):
        """Start `workflow` (its file name) on `ref`: a workflow_dispatch event, which a run's own
        GITHUB_TOKEN may cause (other events it causes start no workflow). A retried 5xx may start
        a second run; that one finds nothing queued and stops, so the retry is harmless."""
        url = f"{self.repo.url}/actions/workflows/{workflow}/dispatches"
        payload = {"ref": ref, "inputs": {k: str(v) for k, v in (inputs or {}).items()}}
        self._write(lambda: self.repo.requester.requestJsonAndCheck("POST", url, input=payload),
                    what=f"starting the workflow {workflow}")


def _raise_if_protected(exc, branch):
    message = exc.data.get("message") if isinstance(exc.data, dict) else None
    refused = protection_refusal(message, branch) if exc.status == 422 and message else None
    if refused:
        raise ProtectedError(refused, status=exc.status) from None
