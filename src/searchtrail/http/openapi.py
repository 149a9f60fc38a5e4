"""OpenAPI for bodies the routers parse themselves.

Routers read the raw body (to enforce the size limit, accept ``text/plain`` from
browsers and validate JSON in one pass under the configured limits), so FastAPI cannot
see the body model; ``body_doc`` declares it and ``install_openapi`` adds the schemas.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

from searchtrail.http.errors import ErrorBody

__all__ = ["body_doc", "install_openapi", "json_response"]

_REF = "#/components/schemas/{model}"
_BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    _BODY_MODELS[model.__name__] = model
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
        }
    }


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in _BODY_MODELS.values():
                _add_schema(schemas, model)
            _add_security(app, spec)
            _add_error_responses(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_security(app: FastAPI, spec: dict[str, Any]) -> None:
    """List each route's key schemes, named by its guard dependency's ``security_schemes``.

    The guards read the headers themselves (see ``http/auth.py``), so FastAPI does not
    see the schemes; this puts them where it would have.
    """
    # Routes as get_openapi walks them: included routers yield their routes with prefixes.
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.path_format:
            continue
        schemes = [
            scheme
            for dependency in route.original_route.dependant.dependencies
            for scheme in getattr(dependency.call, "security_schemes", ())
        ]
        if not schemes:
            continue
        defined = spec["components"].setdefault("securitySchemes", {})
        for scheme in schemes:
            defined[scheme.scheme_name] = jsonable_encoder(
                scheme.model, by_alias=True, exclude_none=True
            )
        for method in route.methods or ():
            operation = spec["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None:  # None: a route left out of the schema
                operation["security"] = [{scheme.scheme_name: []} for scheme in schemes]


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize once with pydantic-core; FastAPI skips its own pass for a ready Response."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")


def _add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    generated = model.model_json_schema(ref_template=_REF, mode="validation")
    schemas.update(generated.pop("$defs", {}))
    schemas.setdefault(model.__name__, generated)


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
# What any route of a kind may answer, whatever its handler does.
_GUARDED_ERRORS = {
    "401": "No API key, or one that is not valid or was revoked",
    "403": "The key lacks this route's scope, or a key that is not ingest-only came in the URL",
    "429": "Over the key's or the client's rate limit",
    "503": "The database is locked (database_locked) or unreachable (database_unavailable), "
    "or its schema is older than this version (schema_outdated); nothing was written",
    "507": "The database's disk is full (disk_full); nothing was written",
}
_BODY_ERRORS = {"413": "The body is larger than max_body_bytes"}
_INVALID = "A field is malformed or missing; detail lists each, with where it is"


def _add_error_responses(spec: dict[str, Any]) -> None:
    """Document every error a route can answer, each in the one shape of ``http/errors.py``.

    FastAPI lists only a 422 of its own shape, and only for routes with parameters it
    parses; the routers parse their bodies themselves, and the guards answer before them.
    """
    schemas = spec["components"]["schemas"]
    _add_schema(schemas, ErrorBody)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    error = {"application/json": {"schema": {"$ref": _REF.format(model=ErrorBody.__name__)}}}
    for operations in spec["paths"].values():
        for operation in operations.values():
            responses: dict[str, Any] = operation["responses"]
            extra = dict(_GUARDED_ERRORS) if operation.get("security") else {}
            if "requestBody" in operation:
                extra.update(_BODY_ERRORS)
            if "requestBody" in operation or "422" in responses:
                responses["422"] = {"description": _INVALID}
            for status, description in extra.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status >= "400":
                    response["content"] = error
                if status in ("429", "503", "507"):
                    response["headers"] = _RETRY_AFTER
            operation["responses"] = dict(sorted(responses.items()))
