"""/openapi.json is generated from the routes' declarations: every route, its permission, its parameters."""
from __future__ import annotations

import asyncio
import json

from openapi_spec_validator import validate
from starlette.routing import Mount

from hive_streams.api.app import create_app
from hive_streams.api.guard import declaration_of
from hive_streams.auth import PUBLIC
from hive_streams.settings import Settings

APP = create_app(Settings(jwt_secret="x" * 32, database_url="sqlite://"))


def document() -> dict:
    route = next(r for r in APP.routes if getattr(r, "path", "") == "/openapi.json")
    return json.loads(asyncio.run(route.endpoint(None)).body)


DOC = document()


def test_it_is_a_valid_openapi_31_document():
    validate(DOC)
    assert DOC["openapi"].startswith("3.1")


def test_every_route_is_in_it_with_the_permission_it_declares():
    for route in APP.routes:
        declared = declaration_of(route)
        if isinstance(route, Mount):
            ops = {"get": DOC["paths"][f"{route.path}/{{path}}"]["get"]}
        else:
            ops = {m.lower(): DOC["paths"][route.path_format][m.lower()] for m in route.methods - {"HEAD"}}
        for op in ops.values():
            if declared.permission == PUBLIC:
                assert op["security"] == []
            else:
                assert op["x-permission"] == declared.permission and op["security"]


def test_parameters_carry_the_bounds_the_guard_checks():
    params = {p["name"]: p for p in DOC["paths"]["/api/views/tasks"]["get"]["parameters"]}
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    body = DOC["paths"]["/api/tasks"]["post"]["requestBody"]["content"]
    assert set(body) >= {"application/json", "application/yaml"}
    task = body["application/json"]["schema"]["oneOf"][0]
    assert task["properties"]["priority"]["maximum"] == 2 ** 63 - 1
    assert task["properties"]["max_retries"] == {"type": "integer", "minimum": 0, "maximum": 20, "default": 2}
    deposit = DOC["paths"]["/api/accounts/{account_id}/deposits"]["post"]["requestBody"]["content"]
    assert deposit["application/json"]["schema"]["properties"]["amount"]["exclusiveMinimum"] == 0


def test_feeds_are_documented_as_event_streams():
    feed = DOC["paths"]["/api/events"]["get"]
    assert "text/event-stream" in feed["responses"]["200"]["content"] and "410" in feed["responses"]
