"""template.yaml: lints clean, and declares every handler under functions/ on its route."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.config import ManualArgs
from cfnlint.decode import cfn_yaml
from fastapi.routing import APIRoute

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
HANDLERS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/handler.py"))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    # cfn-lint's own loader: it turns !Ref / !Sub / !GetAtt into their long forms.
    return cfn_yaml.load(str(TEMPLATE))


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res.get("Properties", {})
        for name, res in template["Resources"].items()
        if res.get("Type") == "AWS::Serverless::Function"
    }


def _http_routes(props: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (str(ev["Properties"]["Method"]).upper(), ev["Properties"]["Path"])
        for ev in props.get("Events", {}).values()
        if ev.get("Type") == "HttpApi"
    }


def _handler_routes(name: str) -> set[tuple[str, str]]:
    module = importlib.import_module(f"functions.{name}.handler")
    routes: set[tuple[str, str]] = set()
    if not hasattr(module, "router"):  # a queue worker or a scheduled job: no HTTP door
        return routes
    for route in module.router.routes:
        assert isinstance(route, APIRoute), f"functions/{name}: unexpected route {route!r}"
        routes |= {(method, route.path) for method in route.methods}
    return routes


def _ws_route(name: str) -> str | None:
    """The WebSocket API route key a handler serves (``ws_route``), if it is one."""
    module = importlib.import_module(f"functions.{name}.handler")
    route = getattr(module, "ws_route", None)
    return str(route) if route else None


WS_HANDLERS = [name for name in HANDLERS if _ws_route(name)]


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {
        name: res.get("Properties", {})
        for name, res in template["Resources"].items()
        if res.get("Type") == kind
    }


def _sub_text(value: Any) -> str:
    """The text of a ``!Sub`` (long form ``{"Fn::Sub": ...}``), or the value as text."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    return str(value)


def test_cfn_lint_reports_no_errors_or_warnings() -> None:
    # Given the template; When cfn-lint runs with informational checks on
    matches = lint_file(TEMPLATE, config=ManualArgs(include_checks=["I"], regions=["us-east-1"]))
    # Then nothing at error or warning level (informational findings are allowed)
    problems = [str(m) for m in matches if m.rule.id[0] in ("E", "W")]
    assert problems == []


def test_there_are_handlers_to_check() -> None:
    assert HANDLERS, "no functions/<name>/handler.py found"


@pytest.mark.parametrize("name", HANDLERS)
def test_every_handler_has_its_function_and_route(template: dict[str, Any], name: str) -> None:
    # Given functions/<name>/handler.py and the route its router declares
    expected_routes = _handler_routes(name)
    module = importlib.import_module(f"functions.{name}.handler")
    assert expected_routes or not hasattr(module, "router"), f"functions/{name}: no route"
    # When looking for the function whose code is that folder
    matching = {
        logical_id: props
        for logical_id, props in _functions(template).items()
        if str(props.get("CodeUri", "")).rstrip("/") == f"functions/{name}"
    }
    # Then there is exactly one, with the Lambda entry point and the same routes
    assert len(matching) == 1, f"template.yaml needs one function with CodeUri functions/{name}/"
    logical_id, props = next(iter(matching.items()))
    assert props["CodeUri"] == f"functions/{name}/"
    assert props.get("Handler") == "handler.handler", logical_id
    assert _http_routes(props) == expected_routes, logical_id
    if not expected_routes and not _ws_route(name):
        # A WebSocket handler is invoked by its route's integration (checked below).
        assert props.get("Events"), f"{logical_id}: no event invokes it"


def test_there_are_websocket_handlers() -> None:
    assert {_ws_route(n) for n in WS_HANDLERS} >= {"$connect", "$disconnect", "$default"}


@pytest.mark.parametrize("name", WS_HANDLERS)
def test_every_websocket_handler_is_its_routes_integration(
    template: dict[str, Any], name: str
) -> None:
    # Given functions/<name>/handler.py declaring the WebSocket route key it serves
    route_key = _ws_route(name)
    function_id = next(
        logical_id
        for logical_id, props in _functions(template).items()
        if props.get("CodeUri") == f"functions/{name}/"
    )
    apis = _of_type(template, "AWS::ApiGatewayV2::Api")
    # When following the WebSocket API's route with that key to its integration
    routes = [
        props
        for props in _of_type(template, "AWS::ApiGatewayV2::Route").values()
        if props.get("RouteKey") == route_key
    ]
    assert len(routes) == 1, f"template.yaml needs one WebSocket route {route_key}"
    api_id = routes[0]["ApiId"]["Ref"]
    assert apis[api_id]["ProtocolType"] == "WEBSOCKET"
    target = _sub_text(routes[0]["Target"])
    assert target.startswith("integrations/${") and target.endswith("}"), target
    integration = _of_type(template, "AWS::ApiGatewayV2::Integration")[target[15:-1]]
    # Then it is a Lambda proxy integration of this handler's function, on the same API
    assert integration["ApiId"] == {"Ref": api_id}
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert f"${{{function_id}.Arn}}" in _sub_text(integration["IntegrationUri"])
    # And API Gateway may invoke that function, from that API
    permissions = [
        p
        for p in _of_type(template, "AWS::Lambda::Permission").values()
        if p.get("FunctionName") == {"Ref": function_id}
    ]
    assert permissions, f"{function_id}: no permission for API Gateway to invoke it"
    assert permissions[0]["Principal"] == "apigateway.amazonaws.com"
    assert f"${{{api_id}}}" in _sub_text(permissions[0]["SourceArn"])


def test_the_websocket_api_deploys_and_its_posters_may_post(template: dict[str, Any]) -> None:
    stages = list(_of_type(template, "AWS::ApiGatewayV2::Stage").values())
    assert any(s.get("AutoDeploy") is True for s in stages)
    policy = template["Resources"]["WsManageConnectionsPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Action"] == "execute-api:ManageConnections"
    # The functions that answer clients (post_to_connection) carry the policy.
    for name in ("ws_default", "ws_monitor_tick"):
        props = next(
            p for p in _functions(template).values() if p["CodeUri"] == f"functions/{name}/"
        )
        assert {"Ref": "WsManageConnectionsPolicy"} in props.get("Policies", []), name


def test_every_http_function_is_on_the_api_with_the_layer(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert {"Ref": "CommonLayer"} in globals_["Layers"]
    layer = template["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-CommonLayer:" in (ROOT / "Makefile").read_text()
    for logical_id, props in _functions(template).items():
        events = [e for e in props.get("Events", {}).values() if e.get("Type") == "HttpApi"]
        for event in events:
            assert event["Properties"].get("ApiId") == {"Ref": "HttpApi"}, logical_id
        if events:
            # API Gateway gives up on an HTTP request at 29 s; the function must not outlive it.
            assert int(props.get("Timeout", globals_["Timeout"])) <= 29, logical_id
        code_uri = str(props.get("CodeUri", ""))
        assert (ROOT / code_uri / "handler.py").is_file(), f"{logical_id}: no {code_uri}handler.py"
