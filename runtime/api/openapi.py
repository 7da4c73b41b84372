"""`GET /t/<slug>/rest/v1/`: the tenant's OpenAPI 3 document, generated from its definition.

Entities become schemas and `/rest/v1/<Entity>` paths with their filters; actions and
transitions become `/rest/v1/rpc/...` paths with typed bodies; the auth endpoints are
listed with the roles the definition declares. Built once per compiled backend (cached
beside it) and served as bytes.
"""

from __future__ import annotations

import json
from django.http import HttpResponse

from runtime.api.errors import ApiError
from runtime.compile import CompiledBackend
from runtime.definition.model import Field

_FORMATS = {
    "string": {"type": "string"},
    "text": {"type": "string"},
    "email": {"type": "string", "format": "email"},
    "url": {"type": "string", "format": "uri"},
    "integer": {"type": "integer", "format": "int64"},
    "decimal": {"type": "number"},
    "float": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "json": {},
    "uuid": {"type": "string", "format": "uuid"},
    "ref": {"type": "string", "format": "uuid"},
    "user": {"type": "string", "format": "uuid"},
    "enum": {"type": "string"},
}
# Query parameters PostgREST reserves: a field with one of these names cannot be filtered
# through the query string (`order=` always means ordering), as in PostgREST itself.
RESERVED_PARAMS = frozenset({"select", "order", "limit", "offset", "columns", "on_conflict", "and", "or", "not", "apikey"})
FILTER_HELP = (
    "PostgREST filter: eq., neq., gt., gte., lt., lte., like., ilike., is., in.(a,b), cs.{a,b}, "
    "fts., wfts.; prefix not. to negate"
)


def field_schema(f: Field) -> dict:
    schema = dict(_FORMATS.get(f.type, {}))
    if f.type == "enum":
        schema["enum"] = list(f.values)
    if f.type == "string":
        schema["maxLength"] = f.max_length or 255
    elif f.max_length is not None:
        schema["maxLength"] = f.max_length
    if f.min_length is not None:
        schema["minLength"] = f.min_length
    if f.min is not None and f.type in ("integer", "decimal", "float"):
        schema["minimum"] = f.min
    if f.max is not None and f.type in ("integer", "decimal", "float"):
        schema["maximum"] = f.max
    if f.pattern:
        schema["pattern"] = f.pattern
    if f.type == "ref":
        schema["description"] = f"id of a {f.to}"
    if f.type == "user":
        schema["description"] = "id of an end user"
    if f.description:
        schema["description"] = f.description
    if f.system:
        schema["readOnly"] = True
    if not f.required and not f.system:
        schema["nullable"] = True
    return schema


def _entity_schema(entity) -> dict:
    properties = {name: field_schema(f) for name, f in entity.fields.items()}
    required = [name for name, f in entity.fields.items() if f.required or f.system]
    return {"type": "object", "properties": properties, "required": required}


def _input_schema(fields) -> dict:
    return {
        "type": "object",
        "properties": {name: field_schema(f) for name, f in fields.items()},
        "required": [name for name, f in fields.items() if f.required],
    }


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors() -> dict:
    error = {"description": "PostgREST-shaped error", "content": {"application/json": {"schema": _ref("Error")}}}
    return {str(code): error for code in (400, 401, 403, 404, 409, 422)}


def _rule_text(entity, op: str) -> str:
    rule = entity.access.get(op)
    return f"Allowed when `{rule.source}`." if rule else "Only the service key may do this."


def _entity_paths(entity) -> dict:
    name = entity.name
    filters = [
        {"name": field, "in": "query", "required": False, "schema": {"type": "string"}, "description": FILTER_HELP}
        for field in entity.fields
        if field not in RESERVED_PARAMS
    ]
    listing = {
        "200": {"description": f"{name} rows you may read",
                "content": {"application/json": {"schema": {"type": "array", "items": _ref(name)}}}},
        **_errors(),
    }
    body = {"required": True, "content": {"application/json": {"schema": {
        "oneOf": [_ref(name), {"type": "array", "items": _ref(name)}]}}}}
    common = [{"$ref": f"#/components/parameters/{p}"} for p in ("select", "order", "limit", "offset")]
    return {
        "get": {"tags": [name], "summary": f"List {name}", "description": _rule_text(entity, "read"),
                "parameters": [*common, {"$ref": "#/components/parameters/prefer"}, *filters], "responses": listing},
        "post": {"tags": [name], "summary": f"Create {name}", "description": _rule_text(entity, "create"),
                 "parameters": [{"$ref": "#/components/parameters/prefer"}], "requestBody": body,
                 "responses": {"201": {"description": "created"}, **_errors()}},
        "patch": {"tags": [name], "summary": f"Update {name} rows matching the filters",
                  "description": _rule_text(entity, "update"),
                  "parameters": [{"$ref": "#/components/parameters/prefer"}, *filters],
                  "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(name)}}},
                  "responses": {"200": {"description": "updated"}, "204": {"description": "updated"}, **_errors()}},
        "delete": {"tags": [name], "summary": f"Delete {name} rows matching the filters",
                   "description": _rule_text(entity, "delete"),
                   "parameters": [{"$ref": "#/components/parameters/prefer"}, *filters],
                   "responses": {"200": {"description": "deleted"}, "204": {"description": "deleted"}, **_errors()}},
    }


def build_document(backend: CompiledBackend, slug: str, version: int) -> dict:
    definition = backend.definition
    paths: dict[str, dict] = {}
    schemas: dict[str, dict] = {
        "Error": {"type": "object", "properties": {k: {"type": "string", "nullable": True}
                                                   for k in ("code", "message", "details", "hint")}},
    }
    for name, entity in definition.entities.items():
        schemas[name] = _entity_schema(entity)
        paths[f"/rest/v1/{name}"] = _entity_paths(entity)
        for t in (entity.states.transitions.values() if entity.states else ()):
            paths[f"/rest/v1/rpc/{name}.{t.name}"] = {"post": {
                "tags": [name], "summary": f"{name}: {t.name} ({', '.join(t.from_states)} -> {t.to})",
                "description": (f"Guard: `{t.when.source}`. " if t.when else "")
                + (f"Allowed when `{t.access.source}`." if t.access else "Only the service key may do this."),
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"id": {"type": "string", "format": "uuid"}}, "required": ["id"]}}}},
                "responses": {"200": {"description": f"the {name} after the transition",
                                      "content": {"application/json": {"schema": _ref(name)}}}, **_errors()},
            }}
    for name, action in definition.actions.items():
        schemas[f"{name}_input"] = _input_schema(action.input)
        paths[f"/rest/v1/rpc/{name}"] = {"post": {
            "tags": ["actions"], "summary": f"Run the action {name}",
            "description": f"Allowed when `{action.access.source}`." if action.access else "Only the service key may do this.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(f"{name}_input")}}},
            "responses": {"200": {"description": "the action's result"}, **_errors()},
        }}
    roles = list(definition.auth.roles)
    credentials = {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                                    "password": {"type": "string", "format": "password"}},
                   "required": ["email", "password"]}
    session = {"description": "a session: access_token, refresh_token, expires_in, user"}
    auth_paths = {
        "/auth/v1/signup": ("post", "Sign up" + ("" if definition.auth.signup == "open" else " (closed: service key only)"), credentials),
        "/auth/v1/token": ("post", "Sign in (?grant_type=password) or refresh (?grant_type=refresh_token)", None),
        "/auth/v1/user": ("get", "The signed-in user", None),
        "/auth/v1/logout": ("post", "Sign out", None),
        "/auth/v1/admin/users": ("get", f"List end users (service key); roles: {', '.join(roles) or 'authenticated'}", None),
    }
    for path, (method, summary, schema) in auth_paths.items():
        operation = {"tags": ["auth"], "summary": summary, "responses": {"200": session, **_errors()}}
        if schema:
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        paths[path] = {method: operation}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": definition.name or slug,
            "version": str(version),
            "description": f"Data API of the Plinth tenant '{slug}', generated from definition version {version}.",
        },
        "servers": [{"url": f"/t/{slug}"}],
        "security": [{"apikey": [], "bearer": []}, {"apikey": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apikey": {"type": "apiKey", "in": "header", "name": "apikey"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "parameters": {
                "select": {"name": "select", "in": "query", "schema": {"type": "string"},
                           "description": "columns and embedded resources, e.g. *,customer(name)"},
                "order": {"name": "order", "in": "query", "schema": {"type": "string"},
                          "description": "e.g. created_at.desc.nullslast"},
                "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                "offset": {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                "prefer": {"name": "Prefer", "in": "header", "schema": {"type": "string"},
                           "description": "count=exact, return=minimal|representation, resolution=merge-duplicates|ignore-duplicates"},
            },
        },
    }


# Keyed by tenant id, never slug: a deleted tenant's slug can be taken by another tenant
# whose first version has the same number.
_documents: dict[tuple[str, int], bytes] = {}


def _document_bytes(tenant_id: str, slug: str, version: int, backend: CompiledBackend) -> bytes:
    key = (tenant_id, version)
    if key not in _documents:
        if len(_documents) > 256:
            _documents.clear()
        _documents[key] = json.dumps(build_document(backend, slug, version), separators=(",", ":")).encode()
    return _documents[key]


def handle(request, context, _name: str = ""):
    if request.method not in ("GET", "HEAD"):
        raise ApiError(405, "PGRST117", f"{request.method} is not allowed here; GET the OpenAPI document.")
    backend = context.backend
    body = _document_bytes(context.tenant.id, context.tenant.slug, context.tenant.version, backend)
    response = HttpResponse(b"" if request.method == "HEAD" else body, content_type="application/openapi+json; charset=utf-8")
    return response
