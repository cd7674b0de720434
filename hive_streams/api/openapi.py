"""The OpenAPI 3.1 document of the whole API, generated from the routes' declarations: the same ones the
guard checks permissions, parameters and bodies against."""
from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route

from ..auth import PUBLIC
from ..auth.permissions import GRANTS
from .guard import Declaration, declaration_of

ERROR = {"type": "object", "required": ["error", "field"],
         "properties": {"error": {"type": "string"}, "field": {"type": "string", "description": "the field that is wrong"}}}
SECURITY = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "session": {"type": "apiKey", "in": "cookie", "name": "hive_session"}}
_REFUSALS = {"400": "unreadable request", "401": "no valid token", "403": "the principal lacks the permission",
             "404": "no such resource, or not the caller's", "413": "body too large", "415": "wrong Content-Type",
             "422": "a field is wrong", "429": "over a limit", "503": "a dependency is unavailable"}


def document(routes: list[BaseRoute], title: str, version: str) -> dict:
    paths: dict[str, dict] = {}
    for route in routes:
        declared = declaration_of(route)
        if declared is None:
            continue
        path, params = _path_of(route)
        for method in _methods(route):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, params, declared)
    return {"openapi": "3.1.0", "info": {"title": title, "version": version}, "paths": paths,
            "components": {"securitySchemes": SECURITY, "schemas": {"Error": ERROR}}}


def _path_of(route: BaseRoute) -> tuple[str, list[str]]:
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}", ["path"]
    return route.path_format, list(route.param_convertors)


def _methods(route: BaseRoute) -> list[str]:
    if isinstance(route, Mount):
        return ["GET"]
    return sorted(set(route.methods or ["GET"]) - {"HEAD"})


def _operation(route: BaseRoute, method: str, path_params: list[str], declared: Declaration) -> dict:
    path = _path_of(route)[0]
    op: dict = {"operationId": _operation_id(method, path), "summary": declared.summary or f"{method} {path}"}
    parameters = [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                  for p in path_params]
    parameters += [{"name": p.name, "in": p.where, "required": p.field.required, "schema": p.field.schema()}
                   for p in declared.params]
    if parameters:
        op["parameters"] = parameters
    if declared.body is not None:
        op["requestBody"] = {"required": declared.body.check is None,
                             "content": {t: {"schema": declared.body.schema} for t in declared.body.types}}
    if declared.permission == PUBLIC:
        op["security"] = []
    else:
        op["security"] = [{"bearer": []}, {"session": []}]
        op["x-permission"] = declared.permission
        op["x-roles"] = sorted(role for role, grants in GRANTS.items() if declared.permission in grants)
        op["description"] = f"Needs the permission `{declared.permission}`."
    op["responses"] = _responses(method, declared)
    return op


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}").replace("-", "_") for w in path.split("/") if w]
    return "_".join([method.lower(), *words]) or method.lower()


def _responses(method: str, declared: Declaration) -> dict:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if declared.stream:
        ok = {"200": {"description": "server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
              "410": {"description": "resumes further back than a feed catches up: use `hive-streams export`", **error}}
    elif method == "GET" or declared.permission == PUBLIC:
        ok = {"200": {"description": "the resource", "content": {"application/json": {"schema": {}}}}}
    else:
        ok = {"202": {"description": "accepted: the command is in the log", "content": {"application/json": {"schema": {}}}}}
    refusals = {code: {"description": why, **error} for code, why in _REFUSALS.items()}
    return {**ok, **refusals}
