"""GitHub behaviours the bot's report path and PR writes depend on (issue #11, defects 3 and 4),
kept apart from the routing in server.py. Each rule cites where GitHub documents it.

- List order: "List pull requests" sorts by `created`, and `direction` defaults to `desc` when
  sort is `created` or absent (REST reference, pulls/list, parameter `direction`:
  https://docs.github.com/rest/pulls/pulls#list-pull-requests). Issue comments come in
  ascending id order (issues/list-comments), which the server already does.
- Pagination: list operations that take `per_page`/`page` (those in rest-subset.json) answer
  `per_page` items (default 30, "max 100") and a `Link` header with rel="next", "last",
  "first", "prev" absolute URLs (https://docs.github.com/rest/using-the-rest-api/using-pagination-in-the-rest-api;
  the header is `components/headers/link` in the description). PyGithub follows rel="next".
- Body size: PR and issue bodies and comments over 65,536 characters are refused with 422
  Validation Failed. The error shapes are GitHub's as reported verbatim by users:
  renovatebot/renovate#2032 (PR body: resource Issue, code custom, field body, "body is too
  long (maximum is 65536 characters)") and telia-oss/github-pr-resource#259 (comment: resource
  IssueComment, code unprocessable, field data, "Body is too long (maximum is 65536 characters)").
- Drafts by plan: "Draft pull requests are available in public repositories with GitHub Free
  and GitHub Free for organizations, GitHub Pro, and legacy per-repository billing plans, and in
  public and private repositories with GitHub Team and GitHub Enterprise Cloud"
  (https://docs.github.com/rest/pulls/pulls#create-a-pull-request). Elsewhere the create is
  refused with 422 {"message": "Draft pull requests are not supported in this repository."}
  (the exact text, as reported in SWE-agent/SWE-agent#179 and mislav/hub#2099).
"""

from urllib.parse import urlencode

BODY_LIMIT = 65536
DEFAULT_PER_PAGE, MAX_PER_PAGE = 30, 100
DRAFT_PLANS = ("team", "enterprise")  # plans with drafts in private repositories too
DRAFTS_REFUSED = "Draft pull requests are not supported in this repository."
DOCS = "https://docs.github.com/rest"


def order_pulls(pulls, query):
    """Pull requests as GitHub lists them: by creation, newest first unless direction=asc."""
    sort = query.get("sort", "created")
    if sort != "created":  # not simulated: fail loudly rather than answer in a made-up order
        raise NotImplementedError(f"pulls/list sort={sort!r} is not simulated")
    direction = query.get("direction", "desc")
    return sorted(pulls, key=lambda p: p["number"], reverse=direction == "desc")


def page(items, query, url):
    """(the requested page of `items`, the Link header or None), as GitHub paginates lists."""
    per_page = min(max(int(query.get("per_page", DEFAULT_PER_PAGE)), 1), MAX_PER_PAGE)
    number = max(int(query.get("page", 1)), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    link = lambda n, rel: f'<{url}?{urlencode({**query, "page": n})}>; rel="{rel}"'  # noqa: E731
    rels = []
    if number > 1:
        rels += [link(min(number - 1, last), "prev")]
    if number < last:
        rels += [link(number + 1, "next"), link(last, "last")]
    if number > 1:
        rels += [link(1, "first")]
    start = (number - 1) * per_page
    return items[start:start + per_page], (", ".join(rels) or None)


def body_too_long(text, resource="Issue"):
    """The 422 GitHub answers for a PR or issue body (resource Issue) or a comment
    (resource IssueComment) over the limit; None when it fits."""
    if len(text or "") <= BODY_LIMIT:
        return None
    if resource == "IssueComment":
        error = {"resource": "IssueComment", "code": "unprocessable", "field": "data",
                 "message": f"Body is too long (maximum is {BODY_LIMIT} characters)"}
    else:
        error = {"resource": resource, "code": "custom", "field": "body",
                 "message": f"body is too long (maximum is {BODY_LIMIT} characters)"}
    return 422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS}


def draft_refused(server, body):
    """The 422 for a draft PR in a private repository on a Free or Pro plan; None otherwise."""
    if body.get("draft") and server.private and server.plan not in DRAFT_PLANS:
        return 422, {"message": DRAFTS_REFUSED, "documentation_url": f"{DOCS}/pulls/pulls#create-a-pull-request"}
    return None
