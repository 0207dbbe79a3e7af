"""A loopback GitHub REST server backed by a real bare git repository.

Refs are read from and written to the bare repository that the bot also pushes to over a
file path, so a fast-forward through the API and a `git push` see the same branches. Pull
requests, labels, comments, reactions and collaborator permissions live in memory. Every
request and response passes through `Contract` (GitHub's OpenAPI description, pinned subset);
a violation answers 599 and is kept in `contract.violations`, so a test cannot miss it.

As github.com (rules and sources in realism.py): list order (pulls newest first), pagination
(per_page, page, the Link header), the 65,536-character body and comment limit, drafts refused
in private repositories on Free/Pro plans (`private`, `plan`).
Simulated, not real: authentication (any token is accepted), mergeability, GitHub's own rate
limits (faults are injected explicitly with `fail`).
"""

import datetime
import json
import subprocess
import sys
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from github_api import realism
from github_api.contract import Contract, ContractError


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fault:
    def __init__(self, method, contains, status, headers=None, times=1, apply=False, message="injected fault"):
        self.method, self.contains, self.status = method, contains, status
        self.headers, self.times, self.apply, self.message = headers or {}, times, apply, message


class Kill:
    """SIGKILL a process when a matching request arrives (before or after the server acts on it)."""

    def __init__(self, method, contains, pid, after, match=None):
        self.method, self.contains, self.pid, self.after = method, contains, pid, after
        self.match = match or (lambda body: True)
        self.fired = False


class FakeGitHub:
    def __init__(self, bare, owner="octo", name="night", default_branch="main", contract=None):
        self.bare, self.owner, self.name, self.default_branch = str(bare), owner, name, default_branch
        self.contract = contract or Contract()
        self.lock = threading.RLock()
        self.pulls, self.labels, self.issue_labels = {}, {}, {}
        self.comments, self.reactions = {}, {}
        self.permissions = {}  # login -> admin|maintain|write|triage|read|none
        self.dispatches = []  # workflow_dispatch events: {workflow, ref, inputs}
        self.requests = []  # (method, path, body, status)
        self.faults = []
        self.kills = []
        self.next_number, self.next_id = 1, 1000
        self.private, self.plan = False, "free"  # drafts: refused when private on free/pro
        self.response_headers = {}  # set while handling one request (under the lock), e.g. Link
        self.request_path = ""
        self.httpd = None
        # Who the token writes as: PRs and comments made with an Actions GITHUB_TOKEN are
        # authored by `github-actions[bot]` (docs: "Automatic token authentication").
        self.token_login = "github-actions[bot]"
        self.rules = []  # (branch pattern, rule text): a ruleset on those branches (see `protect`)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self):
        handler = type("Handler", (_Handler,), {"github": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.base_url

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()

    def fail(self, method, contains, status, headers=None, times=1, apply=False, message="injected fault"):
        """Answer the next `times` matching requests with `status` (fault injection).

        apply=True: act on the request first, then answer the error: the write happened but the
        client cannot know (a 502 from a proxy after GitHub did the work)."""
        self.faults.append(Fault(method, contains, status, headers, times, apply, message))

    def kill_on(self, method, contains, pid, after=False, match=None):
        """kill -9 `pid()` at the first matching request: the client never sees a response."""
        self.kills.append(Kill(method, contains, pid, after, match))

    def _maybe_kill(self, method, path, body, after):
        import os
        import signal

        for kill in self.kills:
            if (not kill.fired and kill.after == after and kill.method == method and kill.contains in path
                    and kill.match(body)):
                kill.fired = True
                os.kill(kill.pid(), signal.SIGKILL)
                return True
        return False

    # ---- GitHub rules the bot must live with (reopen, rulesets, people's PRs) --------------

    def protect(self, pattern, rule="Cannot update this protected ref."):
        """A ruleset on branches matching `pattern` (GitHub's fnmatch: `*` stops at `/`, `**`
        does not), with one rule and no bypass for the bot's token.

        GitHub then refuses a `git push` to such a branch in its pre-receive hook, printing
        `remote: error: GH013: Repository rule violations found for refs/heads/<b>.` and
        `remote: - <rule>`, and answers a REST ref write (git/create-ref, git/update-ref) with 422
        "Repository rule violations found\n\n<rule>" (docs: "Troubleshooting rules"; the REST
        description lists 422 validation_failed for both operations)."""
        self.rules.append((pattern, rule))
        hook = Path(self.bare, "hooks", "pre-receive")
        hook.write_text(_PRE_RECEIVE.format(python=sys.executable, rules=json.dumps(self.rules),
                                            here=str(Path(__file__).resolve().parent.parent),
                                            url=f"https://github.example/{self.owner}/{self.name}"))
        hook.chmod(0o755)

    def rule_for(self, ref):
        """The rule text that refuses a write to `ref` ('heads/<branch>'), or None."""
        return _rule_for(self.rules, ref)

    def reopen_refusal(self, pr):
        """Why GitHub refuses to reopen a closed PR, or None.

        GitHub keeps the head a PR had when it was closed and reopens it only while its head
        branch exists and descends from that head; otherwise pulls/update answers 422 with
        errors[].message "state cannot be changed. The <b> branch has been deleted." or "... was
        force-pushed or recreated." (GitHub support, quoted in isaacs/github#361; pytorch#114423)."""
        current = self.ref_sha(f"heads/{pr['head']}") if not pr.get("fork") else pr["head_sha"]
        if current is None:
            return f"state cannot be changed. The {pr['head']} branch has been deleted."
        if not self.is_ancestor(pr["head_sha"], current):
            return f"state cannot be changed. The {pr['head']} branch was force-pushed or recreated."
        return None

    def open_pull_as(self, user, head, base, title, body, head_sha=None, fork=None):
        """A pull request a person opened: from `head` in this repository, or (fork=OWNER) from
        their fork, whose commit GitHub keeps in this repository under refs/pull/N/head."""
        with self.lock:
            number, self.next_number = self.next_number, self.next_number + 1
            sha = head_sha or self.ref_sha(f"heads/{head}")
            self.git("update-ref", f"refs/pull/{number}/head", sha)
            self.pulls[number] = {"number": number, "title": title, "body": body, "head": head, "base": base,
                                  "head_sha": sha, "pull_ref": sha, "draft": False, "state": "open",
                                  "merged": False, "created_at": _now(), "user": user, "fork": fork}
            return number

    def writes(self, method=None, contains=""):
        return [r for r in self.requests if r[0] != "GET" and (method is None or r[0] == method) and contains in r[1]]

    # ---- git ------------------------------------------------------------------------------

    def git(self, *args, check=True):
        done = subprocess.run(["git", "-C", self.bare, *args], capture_output=True, text=True)
        if check and done.returncode:
            raise RuntimeError(done.stderr)
        return done

    def ref_sha(self, ref):
        done = self.git("rev-parse", "--verify", "--quiet", f"refs/{ref}^{{commit}}", check=False)
        return done.stdout.strip() or None

    def is_ancestor(self, a, b):
        return self.git("merge-base", "--is-ancestor", a, b, check=False).returncode == 0

    # ---- object builders (skeleton from the description + real values) -------------------

    def url(self, path):
        return f"{self.base_url}/repos/{self.owner}/{self.name}{path}"

    def user(self, login="autoresearch-bot"):
        return self.contract.skeleton("simple-user", login=login, id=abs(hash(login)) % 10**6,
                                      type="Bot" if login.endswith(("bot", "[bot]")) else "User",
                                      url=f"{self.base_url}/users/{login}")

    def repository(self, full=False, owner=None):
        owner = owner or self.owner
        return self.contract.skeleton(
            "full-repository" if full else "repository", id=1 if owner == self.owner else 2, name=self.name,
            full_name=f"{owner}/{self.name}", owner=self.user(owner), fork=owner != self.owner,
            url=f"{self.base_url}/repos/{owner}/{self.name}", default_branch=self.default_branch,
            html_url=f"https://github.example/{owner}/{self.name}",
            permissions={"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            private=self.private, visibility="private" if self.private else "public")

    def label_json(self, name):
        return self.contract.skeleton("label", **self.labels[name], url=self.url(f"/labels/{quote(name)}"))

    def git_ref(self, ref):
        return self.contract.skeleton("git-ref", ref=f"refs/{ref}", url=self.url(f"/git/refs/{ref}"),
                                      object={"type": "commit", "sha": self.ref_sha(ref),
                                              "url": self.url(f"/git/commits/{self.ref_sha(ref)}")})

    def refresh(self, pr):
        """GitHub marks a pull request merged once its head commit is on its base branch.

        Only an open PR follows its head branch: a closed one keeps the head it had when it was
        closed (pushes to the branch do not synchronize it), and a fork's head is in the fork."""
        following = pr["state"] == "open" and not pr.get("fork")
        head = (self.ref_sha(f"heads/{pr['head']}") if following else None) or pr["head_sha"]
        if head != pr.get("pull_ref"):  # GitHub keeps refs/pull/N/head, even after the branch is deleted
            self.git("update-ref", f"refs/pull/{pr['number']}/head", head)
            pr["pull_ref"] = head
        pr["head_sha"] = head
        base = self.ref_sha(f"heads/{pr['base']}")
        if pr["state"] == "open" and not pr["merged"] and base and self.is_ancestor(head, base):
            pr.update(state="closed", merged=True, merged_at=_now(), closed_at=_now(), merge_commit_sha=head)

    def pull_json(self, pr):
        self.refresh(pr)
        n = pr["number"]
        side = lambda ref, sha, owner=self.owner: self.contract.skeleton(  # noqa: E731
            "pull-request-simple")["head"] | {"ref": ref, "sha": sha, "label": f"{owner}:{ref}",
                                              "repo": self.repository(owner=owner), "user": self.user(owner)}
        return self.contract.skeleton(
            "pull-request", number=n, id=n, node_id=f"PR_{n}", title=pr["title"], body=pr["body"], state=pr["state"],
            draft=pr["draft"], merged=pr["merged"], merged_at=pr.get("merged_at"),
            closed_at=pr.get("closed_at"), merge_commit_sha=pr.get("merge_commit_sha"),
            url=self.url(f"/pulls/{n}"), issue_url=self.url(f"/issues/{n}"),
            html_url=f"https://github.example/{self.owner}/{self.name}/pull/{n}",
            head=side(pr["head"], pr["head_sha"], pr.get("fork") or self.owner),
            base=side(pr["base"], self.ref_sha(f"heads/{pr['base']}") or ""),
            labels=[self.label_json(x) for x in self.issue_labels.get(n, [])],
            user=self.user(pr.get("user", self.token_login)),
            created_at=pr["created_at"], updated_at=_now(), mergeable_state="clean",
            comments=len(self.comments.get(n, [])))

    def issue_json(self, n):
        pr = self.pulls[n]
        return self.contract.skeleton(
            "issue", number=n, id=n, title=pr["title"], body=pr["body"], state=pr["state"],
            url=self.url(f"/issues/{n}"), user=self.user(pr.get("user", self.token_login)),
            labels=[self.label_json(x) for x in self.issue_labels.get(n, [])],
            pull_request={"url": self.url(f"/pulls/{n}"), "html_url": None, "diff_url": None, "patch_url": None})

    def comment_json(self, c):
        return self.contract.skeleton(
            "issue-comment", id=c["id"], body=c["body"], user=self.user(c["user"]),
            url=self.url(f"/issues/comments/{c['id']}"), issue_url=self.url(f"/issues/{c['issue']}"),
            created_at=c["created_at"], updated_at=c["created_at"])

    # ---- routes ---------------------------------------------------------------------------

    def handle(self, method, template, params, query, body):  # noqa: C901 (a routing table)
        n = int(params["issue_number"]) if "issue_number" in params else None
        if template.endswith("/dispatches"):
            return self.dispatch(params, body)
        if template == "/repos/{owner}/{repo}":
            return 200, self.repository(full=True)
        if template.endswith("/git/ref/{ref}"):
            return (200, self.git_ref(params["ref"])) if self.ref_sha(params["ref"]) else (404, _error("Not Found"))
        if template.endswith("/git/refs") and method == "POST":
            ref = body["ref"].removeprefix("refs/")
            if self.rule_for(ref):
                return 422, _ruleset_error(self.rule_for(ref), "create-a-reference")
            if self.ref_sha(ref):
                return 422, _error("Reference already exists")
            if self.git("update-ref", f"refs/{ref}", body["sha"], "0" * 40, check=False).returncode:
                return 422, _error("Object does not exist")
            return 201, self.git_ref(ref)
        if template.endswith("/git/refs/{ref}"):
            ref, old = params["ref"], self.ref_sha(params["ref"])
            if old is None:
                return 422, _error("Reference does not exist")
            if self.rule_for(ref):
                return 422, _ruleset_error(self.rule_for(ref), "update-a-reference")
            if not body.get("force") and not self.is_ancestor(old, body["sha"]):
                return 422, _error("Update is not a fast forward")
            self.git("update-ref", f"refs/{ref}", body["sha"], old)
            for pr in self.pulls.values():
                self.refresh(pr)
            return 200, self.git_ref(ref)
        if template.endswith("/pulls") and method == "GET":
            found = [p for p in self.pulls.values()
                     if query.get("state", "open") in ("all", p["state"])
                     and ("head" not in query or query["head"] == f"{p.get('fork') or self.owner}:{p['head']}")
                     and ("base" not in query or query["base"] == p["base"])]
            found = self.paged(realism.order_pulls(found, query), query)  # before JSON: refresh runs git
            return 200, [self.pull_json(p) | {"body": p["body"]} for p in found]
        if template.endswith("/pulls") and method == "POST":
            if any(p["head"] == body["head"] and p["base"] == body["base"] and p["state"] == "open"
                   for p in self.pulls.values()):
                return 422, _error("A pull request already exists")
            refused = realism.body_too_long(body.get("body")) or realism.draft_refused(self, body)
            if refused:
                return refused
            head_sha = self.ref_sha(f"heads/{body['head']}")
            base_sha = self.ref_sha(f"heads/{body['base']}")
            if head_sha is None or base_sha is None:
                return 422, _error("head or base branch does not exist")
            if self.is_ancestor(head_sha, base_sha):
                return 422, _error(f"No commits between {body['base']} and {body['head']}")
            number, self.next_number = self.next_number, self.next_number + 1
            self.pulls[number] = {"number": number, "title": body["title"], "body": body.get("body") or "",
                                  "head": body["head"], "base": body["base"], "head_sha": head_sha,
                                  "draft": bool(body.get("draft")), "state": "open", "merged": False,
                                  "created_at": _now(), "user": self.token_login}
            return 201, self.pull_json(self.pulls[number])
        if "pull_number" in params:
            pr = self.pulls.get(int(params["pull_number"]))
            if pr is None:
                return 404, _error("Not Found")
            self.refresh(pr)  # a push just before (e.g. then close) has synchronized the PR
            if method == "PATCH" and body.get("state") == "open" and pr["state"] == "closed" and not pr["merged"]:
                why = self.reopen_refusal(pr)
                if why:
                    return 422, {"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
                                                                             "field": "state", "message": why}],
                                 "documentation_url": "https://docs.github.com/rest/pulls/pulls#update-a-pull-request"}
            if method == "PATCH":
                if realism.body_too_long(body.get("body")):
                    return realism.body_too_long(body.get("body"))
                for key in ("title", "body", "state", "base"):
                    if key in body and not (key == "state" and pr["merged"]):
                        pr[key] = body[key]
                pr["closed_at"] = _now() if pr["state"] == "closed" else None
            return 200, self.pull_json(pr)
        if template.endswith("/labels/{name}") and "issue_number" not in params:
            return (200, self.label_json(params["name"])) if params["name"] in self.labels else (404, _error("Not Found"))
        if template.endswith("/labels") and n is None:
            if body["name"] in self.labels:
                return 422, _error("Validation Failed")
            self.labels[body["name"]] = {"name": body["name"], "color": body.get("color", "ededed"),
                                         "description": body.get("description"), "id": len(self.labels) + 1}
            return 201, self.label_json(body["name"])
        if n is not None and n not in self.pulls:
            return 404, _error("Not Found")
        if template.endswith("/issues/{issue_number}"):
            return 200, self.issue_json(n)
        if template.endswith("/issues/{issue_number}/labels"):
            current = self.issue_labels.setdefault(n, [])
            if method == "POST":
                names = body if isinstance(body, list) else body["labels"]
                for name in names:
                    self.labels.setdefault(name, {"name": name, "color": "ededed", "description": None,
                                                  "id": len(self.labels) + 1})
                    if name not in current:
                        current.append(name)
            return 200, [self.label_json(x) for x in (current if method == "POST" else self.paged(current, query))]
        if template.endswith("/issues/{issue_number}/labels/{name}"):
            current = self.issue_labels.setdefault(n, [])
            if params["name"] not in current:
                return 404, _error("Label does not exist")
            current.remove(params["name"])
            return 200, [self.label_json(x) for x in current]
        if template.endswith("/issues/{issue_number}/comments"):
            if method == "POST":
                if realism.body_too_long(body["body"], "IssueComment"):
                    return realism.body_too_long(body["body"], "IssueComment")
                self.next_id += 1
                self.comments.setdefault(n, []).append({"id": self.next_id, "body": body["body"], "issue": n,
                                                        "user": self.token_login, "created_at": _now()})
                return 201, self.comment_json(self.comments[n][-1])
            return 200, [self.comment_json(c) for c in self.paged(self.comments.get(n, []), query)]
        if "comment_id" in params:
            cid = int(params["comment_id"])
            comment = next((c for cs in self.comments.values() for c in cs if c["id"] == cid), None)
            if comment is None:
                return 404, _error("Not Found")
            if method == "GET":
                return 200, self.comment_json(comment)
            self.next_id += 1
            self.reactions.setdefault(cid, []).append(body["content"])
            return 201, self.contract.skeleton("reaction", id=self.next_id, content=body["content"],
                                               user=self.user(), created_at=_now())
        if "username" in params:
            level = self.permissions.get(params["username"], "none")
            role = {"admin": "admin", "maintain": "maintain", "write": "write", "triage": "triage"}.get(level, "read")
            return 200, self.contract.skeleton(
                "repository-collaborator-permission", permission="none" if level == "none" else
                {"maintain": "write", "triage": "read"}.get(level, level), role_name=role,
                user=self.contract.skeleton("nullable-collaborator", login=params["username"], id=7,
                                            permissions={"pull": True, "push": level in ("admin", "maintain", "write"),
                                                         "admin": level == "admin"}))
        return 404, _error("Not Found")

    def paged(self, items, query):
        """One page of a list, with GitHub's Link header for the others (realism.page)."""
        items, link = realism.page(list(items), query, f"{self.base_url}{self.request_path}")
        if link:
            self.response_headers["Link"] = link
        return items

    def dispatch(self, params, body):
        """A workflow_dispatch event, recorded for the test to run the workflow it starts. GitHub
        answers 204 (no run details unless asked for them)."""
        self.dispatches.append({"workflow": params["workflow_id"], "ref": body["ref"],
                                "inputs": dict(body.get("inputs") or {})})
        return 204, None

    READY_MUTATION = ("mutation Mutation($input: MarkPullRequestReadyForReviewInput!) { markPullRequestReadyForReview"
                      "(input: $input) { clientMutationId pullRequest { isDraft } } }")

    def graphql(self, body):
        """The one GraphQL call the bot makes (REST cannot undraft a PR). Outside the REST
        description: checked against the mutation's documented shape (ALLOWLIST graphql-ready)."""
        with self.lock:
            self.contract.deviations["graphql-ready"] += 1
            query = " ".join((body or {}).get("query", "").split())
            node = ((body or {}).get("variables") or {}).get("input", {}).get("pullRequestId", "")
            number = int(node[3:]) if node.startswith("PR_") and node[3:].isdigit() else None
            if query != self.READY_MUTATION or number not in self.pulls:
                self.contract.violations.append(f"graphql: unexpected request {body!r}")
                return 599, {"errors": [{"message": "contract violation"}]}
            self.pulls[number]["draft"] = False
            self.requests.append(("POST", "/graphql", body, 200))
            return 200, {"data": {"markPullRequestReadyForReview": {"clientMutationId": None,
                                                                     "pullRequest": {"isDraft": False}}}}

    def add_comment(self, number, body, user):
        """A person's comment (as GitHub would store it before sending the webhook)."""
        with self.lock:
            self.next_id += 1
            self.comments.setdefault(number, []).append({"id": self.next_id, "body": body, "issue": number,
                                                         "user": user, "created_at": _now()})
            return self.next_id


def _error(message):
    return {"message": message, "documentation_url": "https://docs.github.com/rest"}


def _ruleset_error(rule, operation):
    return {"message": f"Repository rule violations found\n\n{rule}\n\n",
            "documentation_url": f"https://docs.github.com/rest/git/refs#{operation}"}


def _rule_for(rules, ref):
    """GitHub's branch patterns (fnmatch): `**` matches across `/`, `*` and `?` do not."""
    import re

    if not ref.startswith("heads/"):
        return None
    branch = ref.removeprefix("heads/")
    for pattern, rule in rules:
        regex = "".join(".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
                        for part in re.split(r"(\*\*|\*|\?)", pattern))
        if re.fullmatch(regex, branch):
            return rule
    return None


# GitHub's pre-receive answer to a push that a ruleset refuses (what `git push` prints as remote:).
_PRE_RECEIVE = """#!{python}
import sys
sys.path.insert(0, {here!r})
from github_api.server import _rule_for
RULES = {rules}
refused = False
for line in sys.stdin:
    old, new, ref = line.split()
    rule = _rule_for(RULES, ref.removeprefix("refs/"))
    if rule:
        refused = True
        print(f"error: GH013: Repository rule violations found for {{ref}}.", file=sys.stderr)
        print(f"Review all repository rules at {url}/rules?ref={{ref.replace('/', '%2F')}}", file=sys.stderr)
        print("", file=sys.stderr)
        print(f"- {{rule}}", file=sys.stderr)
        print("", file=sys.stderr)
sys.exit(1 if refused else 0)
"""


class _Handler(BaseHTTPRequestHandler):
    github = None

    def log_message(self, *args):
        pass

    def _serve(self, method):
        gh = self.github
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        if split.path == "/graphql":
            return self._send(*gh.graphql(body), {})
        query = dict(parse_qsl(split.query))
        headers, injected = {}, False
        with gh.lock:
            try:
                template, params = gh.contract.operation_for(method, split.path)
                gh.contract.check_request(method, template, query, body)
                fault = next((f for f in gh.faults if f.method == method and f.contains in split.path and f.times), None)
                if fault:
                    fault.times -= 1
                    if fault.apply:
                        gh.handle(method, template, params, query, body or {})
                    status, payload, headers, injected = fault.status, _error(fault.message), fault.headers, True
                elif gh._maybe_kill(method, split.path, body, after=False):
                    return
                else:
                    gh.response_headers, gh.request_path = {}, split.path
                    status, payload = gh.handle(method, template, params, query, body or {})
                    headers = dict(gh.response_headers)
                    if gh._maybe_kill(method, split.path, body, after=True):
                        gh.requests.append((method, split.path, body, status))
                        return
                gh.contract.check_response(method, template, status, payload, injected=injected)
            except ContractError as exc:
                status, payload = 599, _error(f"contract violation: {exc}")
            except Exception as exc:  # a bug in this server: make the test fail loudly
                gh.contract.violations.append(f"server error on {method} {split.path}: {exc!r}")
                status, payload = 598, _error(f"server error: {exc!r}")
            gh.requests.append((method, split.path, body, status))
        self._send(status, payload, headers)

    def _send(self, status, payload, headers):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")
