"""The published OpenAPI document, made to tell the truth about errors and bodies.

FastAPI documents what it can see: the models of typed bodies and answers, and a 422
of its own shape. Baton answers every error as ``application/problem+json`` (see
:mod:`baton.api.problems`), validates two bodies itself (a lead and an activity need a
validation context: the default phone region, the clock, the JSON limits), and can
fail in ways no route declares (a database that is busy, a change that collides).
:func:`refine` completes the generated document so a client generated from it, or a
fuzzer reading it, meets no undocumented answer:

* the two hand-validated bodies publish their real schemas (``LeadCreate``,
  ``ActivityCreate``) with examples;
* every operation lists the error statuses it can answer, each as problem+json with
  the ``Problem`` schema: 401/403 where credentials are needed, 404 on paths with an id,
  400/413/422 where a body or parameters are read, 409 on changes, 429 where a rate
  limit applies, 500 and 503 everywhere; with the ``WWW-Authenticate`` and
  ``Retry-After`` headers those answers carry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from baton.api.deps import SECURITY_SCHEMES
from baton.api.problems import PROBLEM_JSON
from baton.domain.activities import ActivityCreate
from baton.domain.calls import CallCreate
from baton.domain.contact import NOT_SPECIAL_USE
from baton.domain.leads import LeadCreate

REF = "#/components/schemas/{model}"

TYPED_BODIES: dict[str, type[BaseModel]] = {
    "capture_lead": LeadCreate,
    "ingest_activity": ActivityCreate,
    "log_inbound_call": CallCreate,
}
"""Operations that read their body as a plain object and validate it themselves."""

PUBLIC_OPERATIONS = frozenset({"login", "logout", "health", "ready"})
"""The documented operations that need no credentials; every other one lists the ways
in (:data:`~baton.api.deps.SECURITY_SCHEMES`). The routes authenticate through
:func:`~baton.api.deps.get_principal`, which FastAPI does not see as a security scheme,
so the document says it here (tests/e2e/test_openapi_truth.py holds the two equal)."""

INTAKE_OPERATIONS = frozenset(
    {"capture_lead", "ingest_activity", "ingest_activity_batch", "whoami"}
)
"""The only operations an intake key may call (capture, and asking who it is; anything
else answers it 403), so the only ones that list it among their ways in."""

RATE_LIMITED = frozenset({"capture_lead", "ingest_activity", "ingest_activity_batch", "login"})
"""Operations an intake key (per key) or a sign-in (per account and address) can
exhaust: they answer 429 with Retry-After."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem: what went wrong, for people and programs.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "/problems/<kind>",
            "examples": ["/problems/validation"],
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path that was called"},
        "errors": {
            "type": "array",
            "description": "Validation problems: one per bad field",
            "items": {"$ref": REF.format(model="ProblemField")},
        },
        "incident": {"type": "string", "description": "500 only: the id in the server log"},
        "current": {"type": "string", "description": "409 invalid-transition: the stage now"},
        "requested": {"type": "string", "description": "409 invalid-transition: the stage asked"},
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "409 invalid-transition: the stages allowed from here",
        },
    },
    "additionalProperties": True,
}

PROBLEM_FIELD_SCHEMA: dict[str, Any] = {
    "title": "ProblemField",
    "type": "object",
    "required": ["loc", "message"],
    "properties": {
        "loc": {"type": "string", "description": "Where: a field path such as attributes.x"},
        "message": {"type": "string"},
    },
}

DESCRIPTIONS = {
    400: "The body cannot be read (not JSON encoded as UTF-8)",
    401: "No credentials, or they are not valid (WWW-Authenticate names the scheme)",
    403: "The caller's role or scopes may not do this",
    404: "No such object, or it is outside the caller's reach",
    409: "The change conflicts with the object's state or with a change made at the same moment",
    413: "The request body is larger than BATON_MAX_BODY_BYTES",
    422: "Invalid input: every bad field in errors",
    429: "Too many requests; Retry-After says when to try again",
    500: "An internal error; incident names it in the server log",
    503: "The database is busy or unreachable; nothing was saved, retry after Retry-After",
}

HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "The authentication scheme to use",
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}},
}


def install(app: FastAPI) -> None:
    """Serve the refined document at ``/openapi.json`` (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if getattr(app.state, "openapi_refined", None) is None:
            app.state.openapi_refined = refine(copy.deepcopy(generate()))
        refined: dict[str, Any] = app.state.openapi_refined
        return refined

    app.openapi = openapi  # type: ignore[method-assign]


def refine(spec: dict[str, Any]) -> dict[str, Any]:
    """Complete FastAPI's document (see the module docstring); returns ``spec``."""
    components: dict[str, Any] = spec.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    components["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            operation_id = operation.get("operationId")
            if operation_id not in PUBLIC_OPERATIONS:
                operation["security"] = [
                    {name: []}
                    for name in SECURITY_SCHEMES
                    if name != "intake_key" or operation_id in INTAKE_OPERATIONS
                ]
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemField"] = PROBLEM_FIELD_SCHEMA
    for model in TYPED_BODIES.values():
        _add_model(schemas, model)
    for operations in spec.get("paths", {}).values():
        for method, operation in operations.items():
            _refine_operation(method, operation)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def _add_model(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    found = model.model_json_schema(ref_template=REF)
    for name, definition in found.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    if model is LeadCreate:
        _lead_rules(found)
    schemas[model.__name__] = found


def _lead_rules(schema: dict[str, Any]) -> None:
    """What ``LeadCreate`` checks in code, said in the schema: the email is an address,
    and a lead is reachable or identifiable (an email, a phone or an external id)."""
    properties = schema.get("properties", {})
    if "email" in properties:
        properties["email"]["format"] = "email"
        properties["email"]["pattern"] = NOT_SPECIAL_USE
    ways = [name for name in ("email", "phone", "external_id") if name in properties]
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string", "pattern": "\\S"}}}
        for name in ways
    ]
    if "external_system" in properties and "external_id" in properties:
        # external_system names the system of an external_id: never alone.
        schema["if"] = {
            "required": ["external_system"],
            "properties": {"external_system": {"type": "string"}},
        }
        schema["then"] = {"required": ["external_id"]}


def _refine_operation(method: str, operation: dict[str, Any]) -> None:
    operation_id = operation.get("operationId", "")
    body = operation.get("requestBody")
    model = TYPED_BODIES.get(operation_id)
    if body is not None and model is not None:
        content = body["content"]["application/json"]
        content["schema"] = {"$ref": REF.format(model=model.__name__)}
        if "examples" not in content:
            examples = model.model_json_schema().get("examples", [])
            content["examples"] = {f"example {i + 1}": {"value": v} for i, v in enumerate(examples)}
    parameters = operation.get("parameters", [])
    statuses = {500, 503}
    if operation.get("security"):
        statuses |= {401, 403}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    if body is not None:
        statuses |= {400, 413, 422}
    if parameters:
        statuses.add(422)
    if method.lower() not in ("get", "head", "options"):
        statuses.add(409)
    if operation_id in RATE_LIMITED:
        statuses.add(429)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        if response.get("description") in (None, "", "Validation Error"):
            response["description"] = DESCRIPTIONS.get(int(code), "An error")
        response["content"] = {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}}
        if int(code) in HEADERS:
            response.setdefault("headers", {}).update(HEADERS[int(code)])
