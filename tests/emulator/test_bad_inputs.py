"""Bad requests against every emulator route, over real HTTP: each gets a specific 4xx.

The catalogue :data:`CATALOGUE` is a list of :class:`Bad` families: one kind of bad input
(a missing header, a field of the wrong type, a body over the limit...), the requests that
carry it, and what each must answer: the status, the service's JSON error shape (the
gateway's ``{error_code, message}``, an RFC 7807 problem, or IMS's OAuth error) with a message
that names the problem, never a 500, never a Python traceback, never a token.

The table "Emulator" of ``docs/reliability.md`` is generated from this catalogue
(:func:`render`); ``tests/test_bad_inputs.py`` checks that the page holds it. After changing
the catalogue, print the tables with ``python tests/test_bad_inputs.py`` and paste them.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from aep_io.emulator import Emulator, EmulatorServer, ExportBatch, Tenant
from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from aep_io.emulator.gateway import MAX_BODY
from aep_io.emulator.server import gateway_headers

SANDBOX = "bad-inputs"  # the objects these tests create live apart from other tests' objects
CAT = "/data/foundation/catalog"
DAS = "/data/foundation/export"
UPS = "/data/core/ups"
UNION = "https://ns.adobe.com/xdm/context/profile__union"
PROFILE = {"name": "_xdm.context.profile"}
US = 'homeAddress.countryCode = "US"'
JSON_TYPE = {"Content-Type": "application/json"}
_ABSENT = object()


@dataclass(frozen=True)
class Req:
    """One request. ``{ds}``, ``{seg}``, ``{batch}``, ``{dsf}``, ``{name}``, ``{dir}``,
    ``{other_ds}`` in ``path`` are filled from the fixture's objects; a header mapped to None
    is left out; ``raw`` sends those bytes as the whole request (after the request line and
    the gateway headers) over a socket."""

    method: str
    path: str
    json: Any = _ABSENT
    content: bytes | None = None
    headers: dict[str, str | bytes | None] = field(default_factory=dict)
    prod: bool = False  # the synthetic export's tenant (sandbox prod) rather than SANDBOX
    raw: bytes | None = None
    chunked: bool = False  # send ``content`` with chunked encoding (no Content-Length)

    def __str__(self) -> str:
        extra = ""
        if self.json is not _ABSENT:
            extra = " " + json.dumps(self.json)[:120]
        elif self.content is not None:
            extra = f" <{len(self.content)} bytes: {self.content[:40]!r}>"
        changed = {k: (v if v is None else str(v)[:40]) for k, v in self.headers.items()}
        return f"{self.method} {self.path[:120]}{extra}{f' {changed}' if changed else ''}"


@dataclass(frozen=True)
class Bad:
    """A family of bad inputs and what every one of its requests must answer.

    Attributes:
        input: what is wrong (a row of the docs table).
        where: which routes (for the docs table).
        status: the HTTP status.
        shape: ``gateway`` (``{error_code, message}``), ``problem`` (RFC 7807 of ``service``),
            ``oauth`` (``{error, error_description}``), ``head`` (a HEAD: status only) or
            ``http`` (the HTTP server's own plain-text 400, before the application).
        says: a fragment the message contains (case-insensitive).
        requests: the requests.
        service: the RFC 7807 ``type`` prefix, e.g. ``CAT``.
        code: the gateway's ``error_code``.
    """

    input: str
    where: str
    status: int
    shape: str
    says: str
    requests: tuple[Req, ...]
    service: str = ""
    code: str = ""

    @property
    def gets(self) -> str:
        """What the user gets, for the docs table."""
        if self.shape == "gateway":
            return f"gateway error `{self.code}`: “{self.says}”"
        if self.shape == "problem":
            return f"problem `{self.service.replace('|', '/')}`: “{self.says}”"
        if self.shape == "oauth":
            return f"OAuth error: “{self.says}”"
        if self.shape == "head":
            return "status only (a HEAD response has no body)"
        return f"the HTTP server's plain-text “{self.says}” (before any handler runs)"


# ------------------------------------------------------------------------------------- routes

# Every authenticated route once, with a body that would be valid (the gateway answers first).
AUTHENTICATED = (
    Req("GET", f"{CAT}/dataSets"),
    Req("POST", f"{CAT}/dataSets", json={"name": "d", "schemaRef": {"id": UNION}}),
    Req("GET", f"{CAT}/dataSets/{{ds}}"),
    Req("GET", f"{CAT}/batches"),
    Req("GET", f"{CAT}/batches/{{batch}}"),
    Req("GET", f"{DAS}/batches/{{batch}}/files"),
    Req("GET", f"{DAS}/files/{{dsf}}"),
    Req("GET", f"{DAS}/files/{{dsf}}?path={{name}}"),
    Req("GET", f"{UPS}/segment/definitions"),
    Req("POST", f"{UPS}/segment/definitions", json={
        "name": "never created", "expression": {"type": "PQL", "format": "pql/text",
                                                "value": US}, "schema": PROFILE}),
    Req("GET", f"{UPS}/segment/definitions/{{seg}}"),
    Req("DELETE", f"{UPS}/segment/definitions/{{seg}}"),
    Req("POST", f"{UPS}/segment/definitions/bulk-get", json={"ids": [{"id": "{seg}"}]}),
    Req("GET", f"{UPS}/segment/jobs"),
    Req("POST", f"{UPS}/segment/jobs", json=[{"segmentId": "{seg}"}]),
    Req("GET", f"{UPS}/segment/jobs/nope"),
    Req("DELETE", f"{UPS}/segment/jobs/nope"),
    Req("POST", f"{UPS}/segment/jobs/bulk-get", json={"ids": [{"id": "nope"}]}),
    Req("GET", f"{UPS}/export/jobs"),
    Req("POST", f"{UPS}/export/jobs", json={"schema": PROFILE,
                                            "destination": {"datasetId": "{ds}"}}),
    Req("GET", f"{UPS}/export/jobs/1"),
    Req("DELETE", f"{UPS}/export/jobs/1"),
    Req("GET", "/_emulator/counters"),
    Req("POST", "/_emulator/counters/reset"),
    Req("GET", "/_emulator/faults"),
    Req("POST", "/_emulator/faults", json={"kind": "latency", "delay": 0.01}),
    Req("DELETE", "/_emulator/faults"),
    Req("POST", "/_emulator/faults/reseed", json={"seed": 1}),
)
ALL_ROUTES = "every authenticated route"

# Routes with an id in the path: (path template with {id}, service, methods).
ID_ROUTES = (
    (f"{CAT}/dataSets/{{id}}", "CAT", ("GET",)),
    (f"{CAT}/batches/{{id}}", "CAT", ("GET",)),
    (f"{DAS}/batches/{{id}}/files", "DAS", ("GET",)),
    (f"{DAS}/files/{{id}}", "DAS", ("GET",)),
    (f"{UPS}/segment/definitions/{{id}}", "UPS", ("GET", "DELETE")),
    (f"{UPS}/segment/jobs/{{id}}", "UPS", ("GET", "DELETE")),
    (f"{UPS}/export/jobs/{{id}}", "UPS", ("GET", "DELETE")),
)
# JSON-taking routes: (path, service, whether a JSON array is a valid top level).
BODY_ROUTES = (
    (f"{CAT}/dataSets", "CAT", False),
    (f"{UPS}/segment/definitions", "UPS", False),
    (f"{UPS}/segment/definitions/bulk-get", "UPS", False),
    (f"{UPS}/segment/jobs", "UPS", True),
    (f"{UPS}/segment/jobs/bulk-get", "UPS", False),
    (f"{UPS}/export/jobs", "UPS", False),
    ("/_emulator/faults", "EMU", False),
    ("/_emulator/faults/reseed", "EMU", False),
)
BODY_SERVICES = "|".join(sorted({service for _, service, _ in BODY_ROUTES}))
BODY_WHERE = "every route taking a JSON body"
LISTS = {  # list routes and the paging parameters they take
    f"{CAT}/dataSets": ("CAT", ("start", "limit")),
    f"{CAT}/batches": ("CAT", ("start", "limit")),
    f"{DAS}/batches/{{batch}}/files": ("DAS", ("start", "limit")),
    f"{DAS}/files/{{dsf}}": ("DAS", ("start", "limit")),
    f"{UPS}/segment/definitions": ("UPS", ("start", "limit", "page")),
    f"{UPS}/segment/jobs": ("UPS", ("start", "limit")),
    f"{UPS}/export/jobs": ("UPS", ("limit",)),
}


def _header_family(input: str, status: int, code: str, says: str,
                   headers: dict[str, str | bytes | None]) -> Bad:
    requests = tuple(Req(r.method, r.path, json=r.json, headers=headers, prod=True)
                     for r in AUTHENTICATED)
    return Bad(input, ALL_ROUTES, status, "gateway", says, requests, code=code)


def _body_family(input: str, status: int, says: str, content: bytes,
                 content_type: str | None = "application/json", *,
                 arrays_differ: str | None = None) -> list[Bad]:
    """One family per top-level rule: ``arrays_differ`` is what the segment-jobs route (which
    takes arrays) says instead, when it differs."""
    headers: dict[str, str | bytes | None] = {"Content-Type": content_type}
    same = tuple(Req("POST", path, content=content, headers=headers)
                 for path, _, array in BODY_ROUTES if arrays_differ is None or not array)
    services = {service for path, service, array in BODY_ROUTES
                if arrays_differ is None or not array}
    out = [Bad(input, BODY_WHERE if arrays_differ is None else
               f"{BODY_WHERE} but `POST /segment/jobs`", status, "problem", says,
               same, service="|".join(sorted(services)))]
    if arrays_differ is not None:
        out.append(Bad(input, "`POST /segment/jobs` (takes an array)", 400, "problem",
                       arrays_differ, (Req("POST", f"{UPS}/segment/jobs", content=content,
                                           headers=headers),), service="UPS"))
    return out


def _post(path: str, service: str, cases: list[tuple[str, Any, str]],
          status: int = 400) -> list[Bad]:
    """Families of one JSON body each: (input, body, what the message says)."""
    where = f"`POST {path.removeprefix(UPS).removeprefix(CAT)}`"
    return [Bad(input, where, status, "problem", says, (Req("POST", path, json=body),),
                service=service) for input, body, says in cases]


def _definition(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "bad-input definition", "schema": dict(PROFILE),
                            "expression": {"type": "PQL", "format": "pql/text", "value": US}}
    for key, value in changes.items():
        parent, _, child = key.partition("__")
        if child:
            body[parent] = {**body[parent], child: value}
        elif value is _ABSENT:
            del body[parent]
        else:
            body[parent] = value
    return body


def _export(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": dict(PROFILE), "destination": {"datasetId": "{ds}"}}
    for key, value in changes.items():
        if value is _ABSENT:
            del body[key]
        else:
            body[key] = value
    return body


def _pql_json(tree: Any) -> dict[str, Any]:
    value = tree if isinstance(tree, str) else json.dumps(tree)
    return _definition(expression={"type": "PQL", "format": "pql/json", "value": value})


def _deep_not(depth: int) -> str:
    """A pql/json ``not(not(...(true)))`` nested ``depth`` times (as text: too deep to dump)."""
    return ('{"nodeType": "fnApply", "fnName": "not", "params": [' * depth
            + '{"nodeType": "literal", "value": true}' + "]}" * depth)


def _raw(path: str, headers: str, body: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: emulator\r\n{headers}Connection: close\r\n\r\n"
            .encode() + body)


def _catalogue() -> list[Bad]:
    out: list[Bad] = []
    # -- gateway headers ------------------------------------------------------------------
    out += [
        _header_family("no `Authorization` header", 403, "403010", "Oauth token is missing",
                       {"Authorization": None}),
        _header_family("`Authorization: Basic ...` (not a bearer token)", 401, "401013",
                       "Oauth token is not valid", {"Authorization": "Basic YTpi"}),
        _header_family("a bearer token that is not one of the emulator's", 401, "401013",
                       "Oauth token is not valid", {"Authorization": "Bearer emu1.abc.def"}),
        _header_family("a bearer token with non-ASCII bytes", 401, "401013",
                       "Oauth token is not valid",
                       {"Authorization": b"Bearer emu1.\xe9t\xe9.\xe9"}),
        _header_family("a 10 000-character bearer token", 401, "401013",
                       "Oauth token is not valid", {"Authorization": "Bearer " + "x" * 10_000}),
        _header_family("no `x-api-key`", 403, "403000", "Api Key is required",
                       {"x-api-key": None}),
        _header_family("an `x-api-key` other than the token's client", 403, "403003",
                       "Api Key is invalid", {"x-api-key": "someone-else"}),
        _header_family("no `x-gw-ims-org-id`", 400, "400003",
                       "Missing header: x-gw-ims-org-id", {"x-gw-ims-org-id": None}),
        _header_family("an `x-gw-ims-org-id` other than the token's org", 403, "403025",
                       "Profile is not valid", {"x-gw-ims-org-id": "OTHER@AdobeOrg"}),
        _header_family("no `x-sandbox-name`", 400, "400003", "Missing header: x-sandbox-name",
                       {"x-sandbox-name": None}),
        _header_family("`x-sandbox-name: PROD` (upper case)", 400, "400003", "all lower case",
                       {"x-sandbox-name": "PROD"}),
        _header_family("`x-sandbox-name: ../prod` (traversal)", 400, "400003",
                       "Invalid header x-sandbox-name", {"x-sandbox-name": "../prod"}),
    ]
    # -- malformed ids in the path ----------------------------------------------------------
    ids = [("a 5 000-character id", "a" * 5000, "(5000 characters)"),
           ("a unicode id (`é✓`)", "%C3%A9%E2%9C%93", "not found"),
           ("`..` as the id (`%2e%2e`)", "%2e%2e", "not found"),
           ("a NUL byte in the id (`%00`)", "a%00b", "not found"),
           ("a space in the id (`%20`)", "a%20b", "not found")]
    for input, value, says in ids:
        requests = tuple(Req(m, path.format(id=value), prod=True)
                         for path, _, methods in ID_ROUTES for m in methods)
        out.append(Bad(input, "every route with an id in its path", 404, "problem", says,
                       requests, service="CAT|DAS|UPS"))
    for service, prefix in (("CAT", f"{CAT}/batches"), ("DAS", f"{DAS}/files"),
                            ("UPS", f"{UPS}/segment/jobs")):
        out.append(Bad("an encoded `/` in the id (`..%2F..%2Fetc`)", f"`{prefix}/{{id}}`",
                       404, "problem", "no endpoint GET",
                       (Req("GET", f"{prefix}/..%2F..%2Fetc", prod=True),), service=service))
    # -- ?path= of a dataset file -------------------------------------------------------------
    file_url = f"{DAS}/files/{{dsf}}?path="
    paths = [("`?path=../../etc/passwd` (traversal)", "..%2F..%2Fetc%2Fpasswd"),
             ("`?path=/etc/passwd` (absolute)", "%2Fetc%2Fpasswd"),
             ("`?path=%252e%252e%252f...` (encoded `..`, decoded once)",
              "%252e%252e%252fetc%252fpasswd"),
             ("`?path=..\\..\\x` (Windows traversal)", "..%5C..%5Cx"),
             ("`?path=` with a NUL byte", "part%00.parquet"), ("`?path=` (empty)", ""),
             ("`?path=` of 10 000 characters", "a" * 10_000),
             ("`?path=` naming a file of another dataset file", "{other_name}")]
    for input, value in paths:
        out.append(Bad(input, "`GET /files/{id}`", 404, "problem", "not found in dataSetFile",
                       (Req("GET", file_url + value, prod=True),), service="DAS"))
    out += [
        Bad("each of the `?path=` above, with `HEAD`", "`HEAD /files/{id}`", 404, "head", "",
            tuple(Req("HEAD", file_url + value, prod=True) for _, value in paths)),
        Bad("`HEAD /files/{id}` without `?path=`", "`HEAD /files/{id}`", 400, "head", "",
            (Req("HEAD", f"{DAS}/files/{{dsf}}", prod=True),)),
        Bad("`?path=` on a dataset file that is a directory", "`GET /files/{id}`", 400,
            "problem", "is a directory", (Req("GET", f"{DAS}/files/{{dir}}?path=x"),),
            service="DAS"),
    ]
    ranges = [("`Range: bytes=<past the end>-`", "bytes=999999999-"),
              ("`Range: bytes=-0` (empty suffix)", "bytes=-0"),
              ("`Range` with a 5 000-digit position", "bytes=" + "9" * 5000 + "-")]
    for input, value in ranges:
        out.append(Bad(input, "`GET /files/{id}?path=`", 416, "problem", "lies outside the file",
                       (Req("GET", f"{file_url}{{name}}", headers={"Range": value},
                            prod=True),), service="DAS"))
    # -- query parameters -----------------------------------------------------------------
    params = [("`limit=-1`", "limit", "-1", "must lie between"),
              ("`limit=0`", "limit", "0", "must lie between"),
              ("`limit=abc`", "limit", "abc", "is not an integer"),
              ("`limit=1e3`", "limit", "1e3", "is not an integer"),
              ("`limit=` 30 digits", "limit", "9" * 30, "is too large"),
              ("`start=notanumber`", "start", "notanumber", "is not an integer"),
              ("`start=-5`", "start", "-5", "must lie between"),
              ("`page=-1`", "page", "-1", "must lie between"),
              ("`page=٣` (a non-ASCII digit)", "page", "%D9%A3", "is not an integer")]
    for input, name, value, says in params:
        requests = tuple(Req("GET", f"{path}?{name}={value}", prod=True)
                         for path, (_, names) in LISTS.items() if name in names)
        services = sorted({svc for svc, names in LISTS.values() if name in names})
        out.append(Bad(input, f"every list taking `{name}`", 400, "problem", says, requests,
                       service="|".join(services)))
    enums = [
        ("`status=bogus` (unknown batch status)", f"{CAT}/batches?status=bogus", "CAT",
         "is not a batch status"),
        ("`status=FOO` (unknown job status)", f"{UPS}/segment/jobs?status=FOO", "UPS",
         "is not one of"),
        ("`status=FOO` (unknown job status)", f"{UPS}/export/jobs?status=FOO", "UPS",
         "is not one of"),
        ("`sort=garbage`", f"{UPS}/segment/definitions?sort=garbage", "UPS", "use <field>"),
        ("`sort=name:sideways`", f"{UPS}/segment/definitions?sort=name:sideways", "UPS",
         "asc|desc"),
        ("`sort=garbage`", f"{UPS}/segment/jobs?sort=garbage", "UPS", "asc|desc"),
        ("`property=x` (no `==`)", f"{UPS}/segment/jobs?property=x", "UPS", "path==value"),
        ("`offset=abc` (not a cursor)", f"{UPS}/export/jobs?offset=abc", "UPS",
         "expected <creationTimeMs>_<jobId>"),
        ("`offset=` a 5 000-digit cursor", f"{UPS}/export/jobs?offset={'1' * 5000}_1", "UPS",
         "expected <creationTimeMs>_<jobId>"),
    ]
    for input, url, service, says in enums:
        out.append(Bad(input, f"`GET {url.split('?')[0].removeprefix(UPS).removeprefix(CAT)}`",
                       400, "problem", says, (Req("GET", url),), service=service))
    # -- bodies: transport, encoding, JSON ------------------------------------------------
    out += _body_family("an empty body", 400, "the request body is empty", b"")
    out += _body_family("malformed JSON (`{`)", 400, "malformed JSON body", b"{")
    out += _body_family("bytes that are not UTF-8", 400, "not UTF-8", b'{"name": "\xff\xfe"}')
    out += _body_family("`NaN` in the JSON", 400, "NaN is not valid JSON", b'{"name": NaN}')
    out += _body_family("a number too large for a float (`1e999`)", 400, "too large",
                        b'{"ttlInDays": 1e999}')
    out += _body_family("JSON nested 100 000 levels deep", 400, "nested too deeply",
                        b"[" * 100_000 + b"]" * 100_000)
    out += _body_family("JSON `null`", 400, "not null", b"null")
    out += _body_family("a JSON string", 400, "not a string", b'"x"')
    out += _body_family("a JSON number", 400, "not an integer", b"42")
    out += _body_family("a JSON array", 400, "must be a JSON object, not an array", b"[{}]",
                        arrays_differ="segments[0] must be an object with a segmentId string")
    out += _body_family("`Content-Type: text/plain`", 415, "content-type", b"{}", "text/plain")
    out += _body_family("no `Content-Type`", 415, "content-type", b"{}", None)
    big = b" " * (2 * MAX_BODY)
    out += _body_family(f"a body of {2 * MAX_BODY} bytes (limit {MAX_BODY})", 413,
                        "larger than the limit", big)
    out.append(Bad(f"a chunked body of {2 * MAX_BODY} bytes (no `Content-Length`)", BODY_WHERE,
                   413, "problem", "larger than the limit",
                   tuple(Req("POST", path, content=big, headers=JSON_TYPE, chunked=True)
                         for path, _, _ in BODY_ROUTES), service=BODY_SERVICES))
    lying = "Content-Type: application/json\r\nContent-Length: 99999999999\r\n"
    out.append(Bad("`Content-Length: 99999999999` and a 2-byte body (a lying length)",
                   BODY_WHERE, 413, "problem", "is larger than the limit",
                   tuple(Req("POST", path, raw=_raw(path, lying, b"{}"))
                         for path, _, _ in BODY_ROUTES), service=BODY_SERVICES))
    short = "Content-Type: application/json\r\nContent-Length: 2\r\n"
    out.append(Bad("`Content-Length: 2` and a longer body (a lying length)", BODY_WHERE, 400,
                   "problem", "malformed JSON body",
                   tuple(Req("POST", path, raw=_raw(path, short, b'{"name": 1}'))
                         for path, _, _ in BODY_ROUTES), service=BODY_SERVICES))
    out.append(Bad("`Content-Length: abc`", BODY_WHERE, 400, "http", "Invalid HTTP request",
                   tuple(Req("POST", path, raw=_raw(
                       path, "Content-Type: application/json\r\nContent-Length: abc\r\n", b"{}"))
                         for path, _, _ in BODY_ROUTES)))
    # -- bodies: fields -------------------------------------------------------------------
    out += _post(f"{CAT}/dataSets", "CAT", [
        ("dataset without `name`", {"schemaRef": {"id": UNION}}, "name is required"),
        ("dataset `name` a number", {"name": 5, "schemaRef": {"id": UNION}},
         "name must be a string, not an integer"),
        ("dataset `name` a list", {"name": ["a"], "schemaRef": {"id": UNION}},
         "name must be a string, not an array"),
        ("dataset `name` blank", {"name": "  ", "schemaRef": {"id": UNION}},
         "name must not be empty"),
        ("dataset without `schemaRef`", {"name": "d"}, "schemaRef.id is required"),
        ("dataset `schemaRef` a string", {"name": "d", "schemaRef": UNION},
         "schemaRef must be an object"),
        ("dataset `schemaRef.id` a number", {"name": "d", "schemaRef": {"id": 5}},
         "schemaRef.id must be a string"),
        ("dataset `description` a number", {"name": "d", "description": 5,
                                             "schemaRef": {"id": UNION}},
         "description must be a string"),
    ])
    definitions = f"{UPS}/segment/definitions"
    out += _post(definitions, "UPS", [
        ("definition without `name`", _definition(name=_ABSENT), "name is required"),
        ("definition `name` a list", _definition(name=["a"]), "name must be a string"),
        ("definition `name` a number", _definition(name=7), "name must be a string"),
        ("definition `name` empty", _definition(name=""), "name must not be empty"),
        ("definition without `expression`", _definition(expression=_ABSENT),
         "expression is required"),
        ("definition `expression` a number", _definition(expression=5),
         "expression must be an object, not an integer"),
        ("definition `expression.type` unknown (`ARL`)", _definition(expression__type="ARL"),
         "is not supported"),
        ("definition `expression.type` a number", _definition(expression__type=5),
         "expression.type must be a string"),
        ("definition `expression.format` unknown (`pql/xml`)",
         _definition(expression__format="pql/xml"), "is not supported: use one of"),
        ("definition `expression.value` a number", _definition(expression__value=5),
         "expression.value must be a string"),
        ("definition `expression.value` empty", _definition(expression__value=""),
         "Invalid PQL expression"),
        ("definition `expression.value` unbalanced (`(((`)",
         _definition(expression__value="((("), "Invalid PQL expression at line 1"),
        ("definition `expression.value` of 100 000 `(`",
         _definition(expression__value="(" * 100_000), "unexpected end of input"),
        ("definition `expression.value` 3 000 nested `not`",
         _definition(expression__value="not " * 3000 + "true"), "nested too deeply"),
        ("definition `pql/json` whose `params` is a number",
         _pql_json({"nodeType": "fnApply", "fnName": "=", "params": 5}),
         "params must be an array"),
        ("definition `pql/json` with an unknown `nodeType`", _pql_json({"nodeType": "x"}),
         "unsupported pql/json nodeType"),
        ("definition `pql/json` nested 900 levels", _pql_json(_deep_not(900)),
         "nested too deeply"),
        ("definition `schema` a string", _definition(schema="x"), "schema must be an object"),
        ("definition `schema` empty", _definition(schema={}), "schema.name (or schema.id)"),
        ("definition `schema.name` a number", _definition(schema={"name": 5}),
         "schema.name must be a string"),
        ("definition `schema.name` unknown", _definition(schema={"name": "_xdm.context.nope"}),
         "is not supported: use \"_xdm.context.profile\""),
        ("definition `ttlInDays=-1`", _definition(ttlInDays=-1), "must lie between 0 and"),
        ("definition `ttlInDays` 10³⁰", _definition(ttlInDays=10**30), "must lie between 0 and"),
        ("definition `ttlInDays` a string", _definition(ttlInDays="30"),
         "ttlInDays must be an integer"),
        ("definition `ttlInDays` a float", _definition(ttlInDays=1.5),
         "ttlInDays must be an integer, not a number"),
        ("definition `ttlInDays: true`", _definition(ttlInDays=True),
         "ttlInDays must be an integer, not a boolean"),
        ("definition `evaluationInfo` a list", _definition(evaluationInfo=[]),
         "evaluationInfo must be an object"),
        ("definition `evaluationInfo.batch` a number", _definition(evaluationInfo={"batch": 5}),
         "evaluationInfo.batch must be an object"),
        ("definition `evaluationInfo.batch.enabled` a string",
         _definition(evaluationInfo={"batch": {"enabled": "yes"}}),
         "evaluationInfo.batch.enabled must be a boolean"),
        ("definition `description` a number", _definition(description=5),
         "description must be a string"),
        ("definition `mergePolicyId` a list", _definition(mergePolicyId=[]),
         "mergePolicyId must be a string"),
    ])
    out += _post(definitions, "UPS", [
        ("definition `name` already used", _definition(name="{seg_name}"), "already exists"),
    ], status=422)
    for path, what in ((f"{definitions}/bulk-get", "segment id"),
                       (f"{UPS}/segment/jobs/bulk-get", "segment job id")):
        out += _post(path, "UPS", [
            ("bulk-get without `ids`", {}, "ids is required"),
            ("bulk-get `ids` a string", {"ids": "x"}, "ids must be"),
            ("bulk-get `ids` of numbers", {"ids": [1]}, f'"<{what}>"'),
            ("bulk-get `ids` with a numeric `id`", {"ids": [{"id": 5}]}, f'"<{what}>"'),
        ])
    jobs = f"{UPS}/segment/jobs"
    out += _post(jobs, "UPS", [
        ("segment job `[]`", [], "non-empty array"),
        ("segment job `{}`", {}, "non-empty array"),
        ("segment job `segmentId` a number", [{"segmentId": 5}], "segmentId string"),
        ("segment job `segmentId` empty", [{"segmentId": ""}], "must not be empty"),
        ("segment job item a string", ["x"], "segments[0] must be an object"),
        ("segment job `segments` a string", {"segments": "x"}, "non-empty array"),
        ("segment job `schema` a string", {"schema": "x", "segments": [{"segmentId": "*"}]},
         "schema must be an object"),
        ("segment job `schema.name` a number",
         {"schema": {"name": 5}, "segments": [{"segmentId": "*"}]},
         "schema.name must be a string"),
        ("segment job `schema.name` unknown",
         {"schema": {"name": "nope"}, "segments": [{"segmentId": "*"}]}, "is not supported"),
        ("segment job `snapshot` a number", [{"segmentId": "x", "snapshot": 5}],
         "snapshot must be an object"),
    ])
    exports = f"{UPS}/export/jobs"
    seg = [{"segmentId": "s"}]
    out += _post(exports, "UPS", [
        ("export job without `schema`", _export(schema=_ABSENT), "schema is required"),
        ("export job `schema` a string", _export(schema="x"), "schema must be an object"),
        ("export job `schema.name` a number", _export(schema={"name": 5}),
         "schema.name must be a string"),
        ("export job `schema.name` unknown", _export(schema={"name": "_xdm.nope"}),
         "is not supported"),
        ("export job without `destination`", _export(destination=_ABSENT),
         "destination is required"),
        ("export job `destination` a string", _export(destination="x"),
         "destination must be an object"),
        ("export job `destination.datasetId` a number", _export(destination={"datasetId": 5}),
         "destination.datasetId must be a string"),
        ("export job `destination.segmentPerBatch` a string",
         _export(destination={"datasetId": "{ds}", "segmentPerBatch": "yes"}),
         "segmentPerBatch must be a boolean"),
        ("export job `segmentPerBatch` without segments",
         _export(destination={"datasetId": "{ds}", "segmentPerBatch": True}),
         "segmentPerBatch needs filter.segments"),
        ("export job `fields` a number", _export(fields=5), "fields must be a string"),
        ("export job `fields` a list", _export(fields=["a"]), "fields must be a string"),
        ("export job `mergePolicy` a number", _export(mergePolicy=5),
         "mergePolicy must be an object"),
        ("export job `mergePolicy.id` a number", _export(mergePolicy={"id": 5}),
         "mergePolicy.id must be a string"),
        ("export job `mergePolicy.version` a string", _export(mergePolicy={"version": "x"}),
         "mergePolicy.version must be an integer"),
        ("export job `filter` a number", _export(filter=5), "filter must be an object"),
        ("export job `filter.segments` a number", _export(filter={"segments": 5}),
         "filter.segments must be an array"),
        ("export job `filter.segments[0]` a number", _export(filter={"segments": [5]}),
         "filter.segments[0] must be an object"),
        ("export job `segmentId` missing", _export(filter={"segments": [{"segmentNs": "ups"}]}),
         "segmentId is required"),
        ("export job `segmentId` a number", _export(filter={"segments": [{"segmentId": 5}]}),
         "segmentId must be a string"),
        ("export job `status` unknown (`bogus`)",
         _export(filter={"segments": [{"segmentId": "s", "status": ["bogus"]}]}),
         "status must be a non-empty array of realized, existing, exited"),
        ("export job `status` empty", _export(filter={"segments": [{**seg[0], "status": []}]}),
         "status must be a non-empty array"),
        ("export job `segmentNs` a number",
         _export(filter={"segments": [{**seg[0], "segmentNs": 5}]}),
         "segmentNs must be a string"),
        ("export job `startTime: yesterday`",
         _export(filter={"segmentQualificationTime": {"startTime": "yesterday"}}),
         "is not an RFC 3339 timestamp"),
        ("export job `startTime` a number",
         _export(filter={"segmentQualificationTime": {"startTime": 5}}),
         "must be an RFC 3339 timestamp string"),
        ("export job `startTime` out of range",
         _export(filter={"segmentQualificationTime": {"startTime": "0001-01-01T00:00:00+14:00"}}),
         "is out of range"),
        ("export job `fromIngestTimestamp: 2024-13-45`",
         _export(filter={"fromIngestTimestamp": "2024-13-45"}), "is not an RFC 3339 timestamp"),
        ("export job `emptyProfiles` a string", _export(filter={"emptyProfiles": "no"}),
         "emptyProfiles must be a boolean"),
        ("export job `additionalFields.eventList` a number",
         _export(additionalFields={"eventList": 5}), "eventList must be an object"),
        ("export job `eventList.fields` a number",
         _export(additionalFields={"eventList": {"fields": 5}}), "fields must be a string"),
        ("export job `toIngestTimestamp: x`",
         _export(additionalFields={"eventList": {"filter": {"toIngestTimestamp": "x"}}}),
         "toIngestTimestamp"),
        ("export job `evaluationInfo.segmentation` a string",
         _export(evaluationInfo={"segmentation": "x"}), "segmentation must be a boolean"),
    ])
    out += _post(exports, "UPS", [
        ("export job into an unknown dataset", _export(destination={"datasetId": "nope"}),
         "is not a dataset of this organization and sandbox"),
        ("export job into a dataset not on the profile union schema",
         _export(destination={"datasetId": "{other_ds}"}), "profile union schema"),
    ], status=422)
    # -- IMS ------------------------------------------------------------------------------
    token = "/ims/token/v3"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    good = f"grant_type=client_credentials&client_id={DEFAULT_CLIENT_ID}"
    ims = [("token request with an empty body", 400, b"", form, "missing grant_type"),
           ("`grant_type=password`", 400, b"grant_type=password", form, "is not supported"),
           ("no `client_id`", 400, b"grant_type=client_credentials", form, "missing client_id"),
           ("an unknown `client_id`", 400, b"grant_type=client_credentials&client_id=x", form,
            "invalid client_id"),
           ("a wrong `client_secret`", 401, f"{good}&client_secret=wrong".encode(), form,
            "invalid client_secret"),
           ("a JSON token request", 400, b'{"grant_type": "client_credentials"}', JSON_TYPE,
            "Content-Type must be application/x-www-form-urlencoded"),
           ("a token request over 16 KiB", 413, b"a" * 20_000, form, "larger than the limit")]
    for input, status, content, headers, says in ims:
        out.append(Bad(input, "`POST /ims/token/v3`", status, "oauth", says,
                       (Req("POST", token, content=content, headers={
                           "Authorization": None, "x-api-key": None, "x-gw-ims-org-id": None,
                           "x-sandbox-name": None, **headers}),)))
    # -- methods and paths ----------------------------------------------------------------
    methods = [("PUT", f"{DAS}/files/{{dsf}}", "DAS", "use GET, HEAD"),
               ("POST", f"{DAS}/batches/{{batch}}/files", "DAS", "use GET, HEAD"),
               ("POST", f"{CAT}/batches", "CAT", "use GET, HEAD"),
               ("DELETE", f"{CAT}/dataSets", "CAT", "use GET, HEAD, POST"),
               ("PATCH", f"{UPS}/segment/definitions/{{seg}}", "UPS", "use DELETE, GET, HEAD"),
               ("PUT", f"{UPS}/segment/jobs", "UPS", "use GET, HEAD, POST"),
               ("POST", f"{UPS}/export/jobs/1", "UPS", "use DELETE, GET, HEAD"),
               ("GET", token, "IMS", "use POST")]
    for method, path, service, says in methods:
        out.append(Bad(f"`{method}` where the route does not take it", f"`{method} "
                       f"{path.replace('{dsf}', '{id}').replace('{batch}', '{id}')}`"
                       .replace("{seg}", "{id}"), 405, "problem", says,
                       (Req(method, path, prod=True),), service=service))
    out.append(Bad("`DELETE /_emulator/counters`", "`/_emulator/counters`", 405, "problem",
                   "use GET", (Req("DELETE", "/_emulator/counters"),),
                   service="EMU"))
    unknown = [(f"{CAT}/dataSetFiles", "CAT"), (f"{DAS}/datasets/x/preview", "DAS"),
               (f"{UPS}/audiences", "UPS"), (f"{UPS}/segment/estimate", "UPS"),
               ("/ims/token/v1", "IMS")]
    for path, service in unknown:
        out.append(Bad(f"unknown path `{path}`", "under a service prefix", 404, "problem",
                       "no endpoint GET", (Req("GET", path),), service=service))
    out.append(Bad("unknown path `/nope`", "outside every service", 404, "problem", "Not Found",
                   (Req("GET", "/nope"),), service="EMU"))
    return out


CATALOGUE = _catalogue()


def render() -> str:
    """The docs table of :data:`CATALOGUE` (one row per family)."""
    lines = ["| input | where | status | what the user gets |", "|---|---|---|---|"]
    for bad in CATALOGUE:
        gets = bad.gets.replace("|", "\\|")
        where = bad.where.replace("|", "\\|")
        lines.append(f"| {bad.input} | {where} | {bad.status} | {gets} |")
    return "\n".join(lines)


# -------------------------------------------------------------------------------- the test


@dataclass
class Context:
    http: httpx.Client
    url: str
    headers: dict[str, str]  # SANDBOX
    prod_headers: dict[str, str]
    values: dict[str, str]


@pytest.fixture(scope="module")
def ctx(server: EmulatorServer, emulator: Emulator, export: ExportBatch) -> Iterator[Context]:
    headers = gateway_headers(server.url, sandbox=SANDBOX)
    prod = gateway_headers(server.url)
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        ds = http.post(f"{CAT}/dataSets", json={"name": "bad inputs",
                                                "schemaRef": {"id": UNION}}).json()[0]
        other = http.post(f"{CAT}/dataSets", json={"name": "not union", "schemaRef": {
            "id": "https://ns.adobe.com/acme/schemas/other"}}).json()[0]
        seg = http.post(f"{UPS}/segment/definitions",
                        json=_definition(name="bad-inputs existing")).json()["id"]
    ds_id, other_id = ds.rsplit("/", 1)[1], other.rsplit("/", 1)[1]
    tenant = Tenant(DEFAULT_ORG_ID, SANDBOX)
    batch = emulator.store.create_batch(tenant, ds_id)["id"]
    directory = emulator.store.add_directory(batch)
    (dsf, name, _), (_, other_name, _) = export.files[0], export.files[1]
    with httpx.Client(timeout=60) as client:
        yield Context(client, server.url, headers, prod, {
        "ds": ds_id, "other_ds": other_id, "seg": seg, "seg_name": "bad-inputs existing",
            "batch": export.batch_id, "dsf": dsf, "name": name, "other_name": other_name,
            "dir": directory})


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, new in values.items():
            value = value.replace("{" + key + "}", new)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _raw_send(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def send(ctx: Context, req: Req) -> tuple[int, dict[str, str], bytes]:
    """Send ``req``: (status, headers with lower-case names, body)."""
    base = ctx.prod_headers if req.prod else ctx.headers
    path = _fill(req.path, ctx.values)
    if req.raw is not None:
        gateway = "".join(f"{k}: {v}\r\n" for k, v in base.items())
        request_line, _, rest = req.raw.partition(b"\r\n")
        return _raw_send(ctx.url, request_line + b"\r\n" + gateway.encode() + rest)
    headers: dict[str, str | bytes] = dict(base)
    for key, value in req.headers.items():
        headers.pop(key, None)
        if value is not None:
            headers[key] = value
    kwargs: dict[str, Any] = {}
    if req.json is not _ABSENT:
        kwargs["json"] = _fill(req.json, ctx.values)
    elif req.content is not None:
        body = req.content

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(body), 65536):
                yield body[i : i + 65536]

        kwargs["content"] = chunks() if req.chunked else body
    # httpx sends the path as given (percent-escapes kept): the server decodes them
    response = ctx.http.request(req.method, ctx.url + path, headers=headers, **kwargs)
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}, \
        response.content


def check(bad: Bad, status: int, headers: dict[str, str], body: bytes,
          secrets: list[str]) -> list[str]:
    """What is wrong with one answer (empty when it is right)."""
    problems = []
    text = body.decode("utf-8", "replace")
    if status != bad.status:
        problems.append(f"status {status}, expected {bad.status}: {text[:300]}")
    if "Traceback" in text or 'File "' in text:
        problems.append(f"a traceback in the body: {text[:300]}")
    if any(s in text for s in secrets):
        problems.append("a credential in the body")
    if len(body) > 3000:
        problems.append(f"a {len(body)}-byte error body (the input echoed?)")
    if bad.shape == "head":
        return problems + ([f"a HEAD with a body: {text[:100]}"] if body else [])
    if bad.shape == "http":
        return problems + ([] if bad.says in text else [f"expected {bad.says!r}: {text[:200]}"])
    try:
        payload = json.loads(body)
    except ValueError:
        return [*problems, f"not JSON: {text[:200]}"]
    if bad.shape == "gateway":
        message = str(payload.get("message", ""))
        if payload.get("error_code") != bad.code:
            problems.append(f"error_code {payload.get('error_code')!r}, expected {bad.code!r}")
    elif bad.shape == "oauth":
        message = str(payload.get("error_description", ""))
        if not payload.get("error"):
            problems.append(f"no OAuth 'error': {payload}")
    else:
        message = str(payload.get("detail", ""))
        services = bad.service.split("|")
        kind = str(payload.get("type", ""))
        if payload.get("status") != status or not payload.get("title") or not any(
                f"/{s}-1000-{status}" in kind for s in services):
            problems.append(f"not a {bad.service} problem: {payload}")
        if not headers.get("content-type", "").startswith("application/problem+json"):
            problems.append(f"content-type {headers.get('content-type')}")
    if bad.says.lower() not in message.lower():
        problems.append(f"message {message[:300]!r} does not say {bad.says!r}")
    return problems


def test_catalogue_is_broad() -> None:
    requests = sum(len(b.requests) for b in CATALOGUE)
    assert len(CATALOGUE) >= 150 and requests >= 500, (len(CATALOGUE), requests)
    routed = {(r.method, r.path) for r in AUTHENTICATED}
    assert len(routed) == len(AUTHENTICATED)


@pytest.mark.parametrize("bad", CATALOGUE, ids=[f"{i:03d}" for i in range(len(CATALOGUE))])
def test_bad_input_gets_its_4xx(ctx: Context, bad: Bad) -> None:
    secrets = [ctx.headers["Authorization"].split()[1], ctx.prod_headers["Authorization"]
               .split()[1], DEFAULT_CLIENT_SECRET]
    failures = []
    for req in bad.requests:
        status, headers, body = send(ctx, req)
        failures += [f"{req}: {p}" for p in check(bad, status, headers, body, secrets)]
    assert not failures, f"{bad.input} ({bad.where}):\n" + "\n".join(failures)


def test_the_emulator_still_serves_after_the_catalogue(ctx: Context) -> None:
    r = httpx.get(f"{ctx.url}{CAT}/batches/{ctx.values['batch']}", headers=ctx.prod_headers)
    assert r.status_code == 200


if __name__ == "__main__":
    print(render())
