"""The contract check itself can fail: bad requests and bad responses are caught (answer 599)."""

import json
import urllib.error
import urllib.request

import pytest

from github_api.contract import ALLOWLIST, Contract


def _call(world, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(world.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("method,path,body,violation", [
    ("GET", "/repos/octo/night/pulls?state=bogus", None, "not in"),
    ("GET", "/repos/octo/night/pulls?colour=red", None, "unknown query parameter"),
    ("POST", "/repos/octo/night/pulls", {"title": "no head or base"}, "'head' is a required property"),
    ("POST", "/repos/octo/night/labels", {"name": "x", "color": 5}, "is not of type 'string'"),
    ("PATCH", "/repos/octo/night/git/refs/heads/main", {"force": False}, "'sha' is a required property"),
    ("PUT", "/repos/octo/night/pulls/1/merge", {}, "not an operation in the pinned subset"),
    ("POST", "/repos/octo/night/issues/1/labels", {"labels": []}, "labels"),
])
def test_bad_requests_are_contract_violations(github_world, method, path, body, violation):
    if method == "PUT":  # the merge button: not in the subset, and the server does not even route PUT
        with pytest.raises(AssertionError, match=violation):
            github_world.server.contract.operation_for("PUT", path)
    else:
        status, _ = _call(github_world, method, path, body)
        assert status == 599
        assert any(violation in v for v in github_world.server.contract.violations), github_world.server.contract.violations
    github_world.server.contract.violations.clear()  # expected here; the fixture fails on any other


def test_a_response_missing_a_required_field_is_caught(github_world, monkeypatch):
    server = github_world.server
    original = server.repository

    def broken(full=False):
        data = original(full)
        del data["default_branch"]
        return data

    monkeypatch.setattr(server, "repository", broken)
    status, _ = _call(github_world, "GET", "/repos/octo/night")
    assert status == 599
    assert any("'default_branch' is a required property" in v for v in server.contract.violations)
    server.contract.violations.clear()


def test_the_subset_is_pinned_and_every_deviation_is_explained():
    contract = Contract()
    operations = {op["operationId"] for ops in contract.document["paths"].values() for op in ops.values()}
    assert len(operations) == 20  # + actions/create-workflow-dispatch (comment commands start the experiment workflow)
    assert contract.document["x-sources"]["@octokit/openapi"] == "23.0.2"
    assert set(ALLOWLIST) == {"labels-bare-array", "webhook-example-lag", "graphql-ready", "injected-fault"}
    assert all(len(reason) > 80 for reason in ALLOWLIST.values())
