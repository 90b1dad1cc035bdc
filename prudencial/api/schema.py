"""OpenAPI: the error answers every operation may give, as one shared component.

A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]) adds the
``Error`` schema (prudencial.api.errors' shape) and one response per status to every operation,
without replacing a response a view documents itself; and an operation that needs no
credentials says so (``security: []``).
"""

from __future__ import annotations

_WRITE_METHODS = {"post", "put", "patch", "delete"}
_METHODS = _WRITE_METHODS | {"get", "head", "options", "trace"}

# status → (description, applies to the operation?)
ERROR_RESPONSES = {
    400: (
        "Invalid request: a field, a query parameter (limit, offset), or a body that is not valid "
        "JSON, is nested too deep or repeats a key. `fields` names each field and its rule.",
        lambda method, operation: True,
    ),
    401: (
        "Not authenticated, or the token or session is invalid (see WWW-Authenticate).",
        lambda method, operation: True,
    ),
    403: (
        "Authenticated but not allowed, or a session request without its CSRF token.",
        lambda method, operation: True,
    ),
    404: (
        "Not found, or not visible to you (both answer alike); also an unknown URL, or one "
        "without its trailing slash (code `missing_trailing_slash`, the message gives the URL).",
        lambda method, operation: True,
    ),
    409: (
        "The operation is not allowed in the object's current state.",
        lambda method, operation: method in _WRITE_METHODS,
    ),
    411: (
        "A chunked body without Content-Length.",
        lambda method, operation: True,
    ),
    413: (
        "The body is larger than the limit the message states.",
        lambda method, operation: True,
    ),
    414: (
        "URI too long: answered by the HTTP server in front of Django (gunicorn refuses a "
        "request line over 4094 bytes), not in the API's JSON shape.",
        lambda method, operation: True,
    ),
    415: (
        "The body's Content-Type is not one this operation reads.",
        lambda method, operation: "requestBody" in operation,
    ),
    429: (
        "Too many requests (throttled), or a login locked out after repeated failures. "
        "Retry-After gives the seconds to wait.",
        lambda method, operation: True,
    ),
    405: (
        "The URL exists but not for this method (the Allow header lists the ones it takes).",
        lambda method, operation: True,
    ),
    502: (
        "The enclave answered, but its attestation or signature was refused by the host.",
        lambda method, operation: (
            "/enclave/" in operation.get("operationId", "")
            or operation.get("operationId", "").startswith("enclave_")
        ),
    ),
    503: (
        "The enclave cannot be reached or unlocked right now; retry later.",
        lambda method, operation: (
            "/enclave/" in operation.get("operationId", "")
            or operation.get("operationId", "").startswith("enclave_")
        ),
    ),
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "fields"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, e.g. `invalid`"},
                "message": {"type": "string", "description": "for a person (pt-BR by default)"},
                "fields": {
                    "type": "object",
                    "description": "field or parameter → the rules it broke",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}

_NOT_JSON = {414}  # the server's own answer, before Django

_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Token`"}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 0},
            "description": "seconds to wait",
        }
    },
}


def add_error_responses(result, generator, request, public):
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    responses = components.setdefault("responses", {})
    for status, (description, _applies) in ERROR_RESPONSES.items():
        responses[f"Error{status}"] = {
            "description": description,
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
        }
        if status not in _NOT_JSON:
            responses[f"Error{status}"]["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            # drf-spectacular omits "security" for an operation with auth=[] (the token
            # endpoint); say it explicitly: no credentials needed.
            operation.setdefault("security", [])
            documented = operation.setdefault("responses", {})
            for status, (_description, applies) in ERROR_RESPONSES.items():
                if applies(method, operation):
                    documented.setdefault(
                        str(status), {"$ref": f"#/components/responses/Error{status}"}
                    )
    return result
