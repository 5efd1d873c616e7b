"""`GET /openapi.json`: a valid OpenAPI 3.1 document, served without a key, that names every route of the API."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from openapi_spec_validator import validate

from api.openapi import openapi_document
from local.aws.template import load_sam_template
from tests.support import events

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def _template_routes() -> set[tuple[str, str]]:
    events_ = load_sam_template()["Resources"]["ApiFunction"]["Properties"]["Events"]
    return {
        (event["Properties"]["Method"].lower(), event["Properties"]["Path"])
        for event in events_.values()
        if event["Type"] == "Api"
    }


def test_document_is_valid_openapi_31_and_names_every_route_of_the_api(herald: Herald) -> None:
    # Given the API's routes as the template deploys them
    routes = _template_routes()

    # When the document is fetched from the API, without an API key
    response = herald.api(events.get_route("/openapi.json"))
    document = json.loads(response["body"])

    # Then it is served, is valid OpenAPI 3.1, and describes exactly those routes
    assert response["statusCode"] == 200
    assert document["openapi"].startswith("3.1")
    validate(document)
    documented = {(method, path) for path, item in document["paths"].items() for method in item if method in METHODS}
    assert documented == routes
    assert document == openapi_document()


def test_every_reference_resolves_and_errors_share_one_schema() -> None:
    # Given the document
    document = openapi_document()
    schemas = document["components"]["schemas"]

    # When every $ref in it is collected
    text = json.dumps(document)
    refs = {part.split('"', 1)[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}

    # Then each names a schema, the request models are there, and every 4xx and 5xx of a keyed route is an Error
    assert refs <= set(schemas)
    assert {"NotificationRequest", "BatchRequest", "AcceptedView", "NotificationView", "Error"} <= set(schemas)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:
                continue  # health and provider events answer their own bodies
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    choices = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
                    assert _ref_of("Error") in choices, (method, path, status)


def test_api_key_scheme_is_the_x_api_key_header_and_only_public_routes_waive_it() -> None:
    # Given the document
    document = openapi_document()

    # When its security is read
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    keyless = {path for path, item in document["paths"].items() for op in item.values() if op.get("security") == []}

    # Then the key is the x-api-key header, required but on health, provider events and this document
    assert scheme == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert document["security"] == [{"ApiKey": []}]
    assert keyless == {"/health", "/health/live", "/health/ready", "/provider-events/{provider}", "/openapi.json"}


def _ref_of(model: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model}"}
