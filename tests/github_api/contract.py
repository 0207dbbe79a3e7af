"""Validate requests and responses against the pinned subset of GitHub's OpenAPI description.

The subset (rest-subset.json, webhook-subset.json) is produced by scripts/extract_openapi.py
from the npm packages named in its `x-sources`. OpenAPI 3.0 schemas are JSON Schema with
`nullable`; we translate that keyword and validate with jsonschema. `skeleton()` builds the
smallest instance of a schema, which the loopback server fills with real values, so its
responses carry every field GitHub's description requires.

Allowlisted deviations (each one is counted when it is used; see ALLOWLIST):
"""

import collections
import copy
import json
import re
from pathlib import Path
from urllib.parse import unquote

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

HERE = Path(__file__).resolve().parent

ALLOWLIST = {
    "labels-bare-array": "PyGithub's add_to_labels sends a bare JSON array; the 2026 description "
                         "lists only {labels: [...]}, GitHub still accepts the array. Validated as "
                         "{labels: <array>} instead.",
    "webhook-example-lag": "@octokit/webhooks-examples 7.6.1's issue_comment examples lack fields that "
                           "@octokit/openapi-webhooks 12.1.0 requires (comment.performed_via_github_app, "
                           "comment.reactions, issue.active_lock_reason, issue.reactions, issue.labels[].description); "
                           "complete_example() adds exactly these (null or a zero reaction rollup) before validating.",
    "graphql-ready": "Marking a draft PR ready needs GraphQL (markPullRequestReadyForReview), which the REST "
                     "description does not cover; the server accepts exactly that mutation with a known "
                     "pullRequestId and answers its documented output shape.",
    "injected-fault": "Fault-injected responses (5xx, 403 secondary rate limit, 429 Retry-After) use "
                      "statuses some operations do not document; their bodies are validated against "
                      "basic-error instead of the operation's responses.",
}


class ContractError(AssertionError):
    pass


def _fail(violations, message):
    violations.append(message)
    raise ContractError(message)


def _nullable_to_json_schema(node):
    if isinstance(node, list):
        return [_nullable_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_json_schema(v) for k, v in node.items()}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _pointer(*parts):
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Contract:
    def __init__(self, path=HERE / "rest-subset.json", uri="urn:github-rest"):
        self.document = _nullable_to_json_schema(json.loads(Path(path).read_text()))
        self.uri = uri
        self.registry = Registry().with_resource(uri, Resource(self.document, specification=DRAFT7))
        self.routes = []
        for template, operations in self.document.get("paths", {}).items():
            # `{ref}` holds slashes (heads/a/b): it may span segments; other parameters may not.
            pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(1) == 'ref' else '[^/]+'})",
                             re.escape(template))
            for method in operations:
                self.routes.append((method.upper(), re.compile(f"^{pattern}$"), template))
        self.validated = collections.Counter()  # operationId -> validated request+response pairs
        self.deviations = collections.Counter()
        self.violations = []

    # ---- schema helpers -------------------------------------------------------------------

    def resolve(self, node):
        while isinstance(node, dict) and "$ref" in node:
            node = self.registry.resolver(self.uri).lookup(self.uri + node["$ref"]).contents
        return node

    def validate(self, instance, pointer, what):
        validator = jsonschema.Draft7Validator({"$ref": self.uri + pointer}, registry=self.registry)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            message = (f"{what}: {first.message[:300]} at {'/'.join(map(str, first.absolute_path)) or '(root)'}"
                       f" ({len(errors)} error(s))")
            self.violations.append(message)
            raise ContractError(message)

    def skeleton(self, schema_name, **values):
        """The smallest instance of components/schemas/<name>, with `values` laid over it."""
        instance = self._minimal(self.resolve({"$ref": _pointer("components", "schemas", schema_name)}), top=True)
        instance.update(values)
        return instance

    def _minimal(self, schema, top=False):
        schema = self.resolve(schema)
        if "allOf" in schema:
            merged = {}
            for part in schema["allOf"]:
                merged.update(self._minimal(part) or {})
            return merged
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [o for o in schema[key] if not (top and self.resolve(o).get("type") == "null")]
                return self._minimal(options[0], top)
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "null" in kinds and not top:
            return None
        if "enum" in schema:
            return schema["enum"][0]
        if "object" in kinds or "properties" in schema:
            return {name: self._minimal(schema["properties"].get(name, {}))
                    for name in schema.get("required", []) if name in schema.get("properties", {})}
        if "array" in kinds:
            return []
        if "integer" in kinds or "number" in kinds:
            return 1
        if "boolean" in kinds:
            return False
        fmt = schema.get("format")
        return {"date-time": "2026-01-01T00:00:00Z", "uri": "https://example.invalid/x",
                "email": "x@example.invalid"}.get(fmt, "x")

    # ---- requests and responses -----------------------------------------------------------

    def operation_for(self, method, raw_path):
        path = raw_path.split("?", 1)[0]
        for route_method, pattern, template in self.routes:
            match = pattern.match(path)
            if route_method == method and match:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return template, params
        message = f"{method} {path} is not an operation in the pinned subset (add it to scripts/extract_openapi.py)"
        self.violations.append(message)
        raise ContractError(message)

    def check_request(self, method, template, query, body):
        op = self.document["paths"][template][method.lower()]
        for param in (self.resolve(p) for p in op.get("parameters", [])):
            if param["in"] == "query" and param["name"] in query and "enum" in self.resolve(param["schema"]):
                allowed = self.resolve(param["schema"])["enum"]
                if query[param["name"]] not in allowed:
                    _fail(self.violations, f"{op['operationId']}: query {param['name']}={query[param['name']]!r} not in {allowed}")
        known = {self.resolve(p)["name"] for p in op.get("parameters", []) if self.resolve(p)["in"] == "query"}
        unknown = set(query) - known
        if unknown:
            message = f"{op['operationId']}: unknown query parameter(s) {sorted(unknown)}"
            self.violations.append(message)
            raise ContractError(message)
        request = op.get("requestBody")
        if request is None:
            if body not in (None, b"", {}):
                _fail(self.violations, f"{op['operationId']} takes no body, got {body!r}")
            return op["operationId"]
        if body is None:
            if request.get("required"):
                _fail(self.violations, f"{op['operationId']} needs a JSON body")
            return op["operationId"]
        if op["operationId"] == "issues/add-labels" and isinstance(body, list):
            self.deviations["labels-bare-array"] += 1
            body = {"labels": body}
        pointer = _pointer("paths", template, method.lower(), "requestBody", "content", "application/json", "schema")
        self.validate(body, pointer, f"request {op['operationId']}")
        return op["operationId"]

    def check_response(self, method, template, status, body, injected=False):
        op = self.document["paths"][template][method.lower()]
        responses = op["responses"]
        if injected:
            self.deviations["injected-fault"] += 1
            self.validate(body, _pointer("components", "schemas", "basic-error"), f"injected {status}")
            return
        key = str(status) if str(status) in responses else "default"
        if key not in responses:
            message = f"{op['operationId']}: status {status} is not documented ({sorted(responses)})"
            self.violations.append(message)
            raise ContractError(message)
        response = self.resolve(responses[key])
        content = response.get("content", {}).get("application/json")
        if content is None:
            if body not in (None, b""):
                _fail(self.violations, f"{op['operationId']} {status} has no body in the description")
        else:
            if responses[key].get("$ref"):
                pointer = _pointer("components", "responses", responses[key]["$ref"].rsplit("/", 1)[1],
                                   "content", "application/json", "schema")
            else:
                pointer = _pointer("paths", template, method.lower(), "responses", key, "content",
                                   "application/json", "schema")
            self.validate(body, pointer, f"response {op['operationId']} {status}")
        self.validated[op["operationId"]] += 1


def webhook_contract():
    return Contract(HERE / "webhook-subset.json", uri="urn:github-webhooks")


def complete_example(contract, payload):
    """Add the fields the examples package lags behind on (ALLOWLIST webhook-example-lag), nothing else."""
    payload = copy.deepcopy(payload)
    rollup = {"url": "https://example.invalid/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
              "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0}
    added = 0
    for obj, field, value in [(payload["comment"], "performed_via_github_app", None), (payload["comment"], "reactions", rollup),
                              (payload["issue"], "active_lock_reason", None), (payload["issue"], "reactions", rollup),
                              *[(label, "description", None) for label in payload["issue"].get("labels", [])]]:
        if field not in obj:
            obj[field] = copy.deepcopy(value)
            added += 1
    if added:
        contract.deviations["webhook-example-lag"] += 1
    return payload


def validate_event(contract, name, payload):
    contract.validate(payload, _pointer("webhooks", name, "post", "requestBody", "content",
                                        "application/json", "schema"), f"event {name}")
    return copy.deepcopy(payload)


ALLOWLIST_DOC = "\n".join(f"- {k}: {v}" for k, v in ALLOWLIST.items())
__doc__ += ALLOWLIST_DOC
