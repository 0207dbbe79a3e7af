"""Extract the pinned subset of GitHub's OpenAPI description that the bot's GitHub tests use.

The full description (npm `@octokit/openapi`, generated/api.github.com.json) is 13 MB; the
tests need only the operations the bot calls, the webhook schema for `issue_comment`, and one
example event. This script cuts those out with every `$ref` they reach, drops prose
(descriptions, examples) that validation ignores, and writes tests/github_api/*.json.

    npm pack @octokit/openapi@23.0.2 @octokit/openapi-webhooks@12.1.0 @octokit/webhooks-examples@7.6.1
    for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    python scripts/extract_openapi.py --openapi octokit-openapi-23.0.2/package \
        --webhooks octokit-openapi-webhooks-12.1.0/package \
        --examples octokit-webhooks-examples-7.6.1/package
"""

import argparse
import json
from pathlib import Path

# (method, path): every REST operation the bot (through PyGithub) may call.
OPERATIONS = [
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/git/ref/{ref}"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("patch", "/repos/{owner}/{repo}/git/refs/{ref}"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/labels/{name}"),
    ("post", "/repos/{owner}/{repo}/labels"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("delete", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("get", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("post", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions"),
    ("post", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"),  # commands start the run
]
WEBHOOKS = ("issue-comment-created", "issue-comment-edited")  # the command workflow's triggers
SOURCES = {"@octokit/openapi": "23.0.2", "@octokit/openapi-webhooks": "12.1.0",
           "@octokit/webhooks-examples": "7.6.1"}


def strip_prose(node, in_properties=False):
    """Drop human text; keep a property that happens to be called `description`."""
    if isinstance(node, list):
        return [strip_prose(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if not in_properties and key in ("description", "summary", "examples", "example",
                                         "externalDocs", "x-github", "title"):
            continue
        out[key] = strip_prose(value, in_properties=(key == "properties" and not in_properties))
    return out


def refs_in(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs_in(item)


def close_over_refs(document, roots):
    """Every component reachable from `roots`, as {kind: {name: object}}."""
    components, pending = {}, list(refs_in(roots))
    while pending:
        ref = pending.pop()
        _, _, kind, name = ref.split("/", 3)
        if name in components.get(kind, {}):
            continue
        obj = strip_prose(document["components"][kind][name])
        components.setdefault(kind, {})[name] = obj
        pending.extend(refs_in(obj))
    return {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())}


def extract_rest(document):
    paths = {}
    for method, path in OPERATIONS:
        operation = document["paths"][path][method]
        paths.setdefault(path, {})[method] = strip_prose(operation)
    return {"openapi": document["openapi"], "info": {"version": document["info"]["version"]},
            "paths": paths, "components": close_over_refs(document, paths)}


def extract_webhooks(document):
    roots = {name: strip_prose(document["webhooks"][name]) for name in WEBHOOKS}
    return {"openapi": document["openapi"], "webhooks": roots,
            "components": close_over_refs(document, roots)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--openapi", required=True, type=Path)
    parser.add_argument("--webhooks", required=True, type=Path)
    parser.add_argument("--examples", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "tests" / "github_api")
    args = parser.parse_args()
    rest = json.loads((args.openapi / "generated" / "api.github.com.json").read_text())
    hooks = json.loads((args.webhooks / "generated" / "api.github.com.json").read_text())
    examples = json.loads((args.examples / "api.github.com" / "index.json").read_text())
    # The package has no comment on a pull request; tests turn these into one (and validate).
    event = next(e for e in examples if e["name"] == "issue_comment")
    created = next(x for x in event["examples"] if x.get("action") == "created")
    edited = next(x for x in event["examples"] if x.get("action") == "edited")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in [("rest-subset.json", extract_rest(rest)),
                       ("webhook-subset.json", extract_webhooks(hooks)),
                       ("issue_comment.created.json", created), ("issue_comment.edited.json", edited)]:
        if "subset" in name:
            data = {"x-sources": SOURCES, **data}
        (args.out / name).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
