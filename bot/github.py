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


class GitHubError(BotError):
    """GitHub refused or kept failing a request."""


class StaleError(GitHubError):
    """A ref moved under us (compare-and-swap lost): re-read and decide again."""


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

    def _call(self, action, lookup=None, what="request"):
        """Run `action`; on a retryable error wait, check `lookup` (did it happen?), retry."""
        from github import GithubException

        for attempt in range(self.attempts):
            try:
                return action()
            except GithubException as exc:
                if not _retryable(exc) or attempt == self.attempts - 1:
                    raise GitHubError(f"GitHub refused {what}: {exc.status} {exc.data}. "
                                      "Rerun the same command: finished steps are found and skipped.") from None
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
            self._write(lambda: self.repo.create_git_ref(f"refs/heads/{branch}", sha), lookup, f"creating {branch}")
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
            raise StaleError(f"{branch} could not be fast-forwarded to {new_sha[:7]}: {exc}") from None

    # ---- pull requests ---------------------------------------------------------------------

    def find_pr(self, head, base=None):
        owner = self.repo.owner.login
        pulls = self._call(lambda: list(self.repo.get_pulls(state="all", head=f"{owner}:{head}")), what="listing PRs")
        pulls = [p for p in pulls if base is None or p.base.ref == base]
        return pulls[-1] if pulls else None

    def pulls_with_label(self, label="autoresearch"):
        return [p for p in self._call(lambda: list(self.repo.get_pulls(state="all")), what="listing PRs")
                if any(lab.name == label for lab in p.labels)]

    def get_pr(self, number):
        return self._call(lambda: self.repo.get_pull(number), what=f"reading PR #{number}")

    def ensure_pr(self, head, base, title, body, draft=False):
        lookup = lambda: self.find_pr(head, base)  # noqa: E731
        found = lookup()
        if found is not None:
            return found
        return self._write(lambda: self.repo.create_pull(base=base, head=head, title=title, body=body, draft=draft),
                           lookup, f"opening a PR from {head}")

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
                self._call(lambda n=name: pr.remove_from_labels(n), what=f"unlabelling #{pr.number} {name}")

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
        return self._call(lambda: self.repo.get_collaborator_permission(login), what=f"permission of {login}")

    # ---- Actions --------------------------------------------------------------------------

    def dispatch_workflow(self, workflow, ref, inputs=None):
        """Start `workflow` (its file name) on `ref`: a workflow_dispatch event, which a run's own
        GITHUB_TOKEN may cause (other events it causes start no workflow). A retried 5xx may start
        a second run; that one finds nothing queued and stops, so the retry is harmless."""
        url = f"{self.repo.url}/actions/workflows/{workflow}/dispatches"
        payload = {"ref": ref, "inputs": {k: str(v) for k, v in (inputs or {}).items()}}
        self._write(lambda: self.repo.requester.requestJsonAndCheck("POST", url, input=payload),
                    what=f"starting the workflow {workflow}")
