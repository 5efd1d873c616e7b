"""Stage method throttles (``MethodSettings`` of an ``AWS::Serverless::Api``) in the gateway, beside the usage plan's.

Each test writes a small SAM template to ``tmp_path`` with a keyed route, two keyless health routes, a usage plan
with a per-key throttle and two keys on it, and provisions it into moto; the throttles refill on a hand-moved clock.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.gateway import ApiGateway
from local.apigateway.proxy_event import HttpRequest
from local.apigateway.server import ApiServer
from local.aws.provision import provision
from local.aws.template import Stack
from tests.integration.local.conftest import unique_key_value
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from local.runtime import AwsClients
    from tests.integration.local.conftest import Reply

THROTTLED = {"error": {"code": "throttled", "message": "Too many requests; slow down and retry"}}

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
      Auth:
        ApiKeyRequired: true
        UsagePlan:
          CreateUsagePlan: PER_API
          Throttle: {RateLimit: 1, BurstLimit: 1}
      GatewayResponses:
        THROTTLED:
          StatusCode: "429"
          ResponseTemplates:
            application/json: '{"error": {"code": "throttled", "message": "Too many requests; slow down and retry"}}'
      MethodSettings: METHOD_SETTINGS
  SecondKey:
    Type: AWS::ApiGateway::ApiKey
    Properties: {Enabled: true}
  SecondUsagePlanKey:
    Type: AWS::ApiGateway::UsagePlanKey
    Properties: {KeyId: !Ref SecondKey, KeyType: API_KEY, UsagePlanId: !Ref ApiUsagePlan}
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: api.app.lambda_handler
      Runtime: python3.11
      CodeUri: functions/
      Events:
        Live:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health/live, Method: get, Auth: {ApiKeyRequired: false}}
        Ready:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health/ready, Method: get, Auth: {ApiKeyRequired: false}}
        GetNotification:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: "/notifications/{id}", Method: get}
"""


@dataclass
class CountingFunction:
    """The API function: answers 200 and counts the requests that reached it, by resource."""

    calls: dict[str, int] = field(default_factory=dict)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.calls[event["resource"]] = self.calls.get(event["resource"], 0) + 1
        return {"statusCode": 200, "body": "{}"}


@dataclass
class ThrottledApi:
    gateway: ApiGateway
    function: CountingFunction
    clock: FakeClock
    first_key: str  # the plan's own key (ApiApiKey)
    second_key: str  # another key on the plan (SecondKey)

    def get(self, path: str, api_key: str | None = None, source_ip: str = "127.0.0.1") -> int:
        """Send ``GET path`` straight to the gateway; the status it answers."""
        headers = [("Host", "127.0.0.1"), *([("x-api-key", api_key)] if api_key else [])]
        return self.gateway.handle(HttpRequest.from_target("GET", path, headers, b"", source_ip)).status


@pytest.fixture
def throttled_api(tmp_path: Path, aws: AwsClients) -> Callable[..., ThrottledApi]:
    """The template with ``method_settings`` as its stage's MethodSettings, provisioned, its gateway on a fake clock."""

    def make(*method_settings: dict[str, Any]) -> ThrottledApi:
        path = tmp_path / f"template-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(TEMPLATE.replace("METHOD_SETTINGS", json.dumps(list(method_settings))), encoding="utf-8")
        stack = Stack.from_file(path)
        stack.stack_name = f"t{uuid.uuid4().hex[:8]}"
        first_key, second_key = unique_key_value("first"), unique_key_value("second")
        provision(stack, aws, stack.stack_name, api_key_values={"ApiApiKey": first_key, "SecondKey": second_key})
        function, clock = CountingFunction(), FakeClock()
        gateway = ApiGateway.from_stack(
            stack, {stack.arns["ApiFunction"]: function}, aws.client("apigateway"), throttle_clock=clock
        )
        return ThrottledApi(gateway, function, clock, first_key, second_key)

    return make


@pytest.fixture
def serve() -> Iterator[Callable[[ApiGateway], ApiServer]]:
    servers: list[ApiServer] = []

    def start(gateway: ApiGateway) -> ApiServer:
        servers.append(ApiServer(gateway, 0).start())  # 127.0.0.1, a port the system picks
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_keyless_route_gets_its_burst_then_the_throttled_response_and_refills_at_the_rate(
    throttled_api: Callable[..., ThrottledApi], serve: Callable[[ApiGateway], ApiServer], http: Callable[..., Reply]
) -> None:
    # Given GET /health/live limited to a burst of 2 at 1 request per second, served over HTTP
    api = throttled_api(
        {"ResourcePath": "/~1health~1live", "HttpMethod": "GET", "ThrottlingRateLimit": 1, "ThrottlingBurstLimit": 2}
    )
    url = f"{serve(api.gateway).url}/health/live"

    # When three callers (one sending a key, which the route does not ask for) call at once, then one more after
    # half a second and another after a second
    at_once = [http("GET", url), http("GET", url, {"x-api-key": api.first_key}), http("GET", url)]
    api.clock.advance(0.5)
    half_second = http("GET", url)
    api.clock.advance(0.5)
    one_second = http("GET", url)

    # Then the burst is shared by every caller: two answers, then API Gateway's THROTTLED response as the template
    # shapes it, until a token comes back at the rate; throttled requests never reach the function
    assert [reply.status for reply in at_once] == [200, 200, 429]
    throttled = at_once[2]
    assert throttled.json() == THROTTLED
    assert throttled.header("Content-Type") == ["application/json"]
    assert len(throttled.header("x-amzn-RequestId")) == 1
    assert half_second.status == 429
    assert one_second.status == 200
    assert api.function.calls == {"/health/live": 3}


def test_method_setting_throttles_only_the_method_it_names(throttled_api: Callable[..., ThrottledApi]) -> None:
    # Given a burst of 1 with no refill for GET /health/live only
    api = throttled_api(
        {"ResourcePath": "/~1health~1live", "HttpMethod": "GET", "ThrottlingRateLimit": 0, "ThrottlingBurstLimit": 1}
    )

    # When each health route is called five times, from different addresses
    live = [api.get("/health/live", source_ip=f"10.0.0.{n}") for n in range(5)]
    ready = [api.get("/health/ready", source_ip=f"10.0.0.{n}") for n in range(5)]

    # Then /health/live answered once for all of them together, and /health/ready, which no setting names, every time
    assert live == [200, 429, 429, 429, 429]
    assert ready == [200] * 5


def test_keyed_route_gets_its_per_key_usage_plan_throttle_and_its_method_throttle(
    throttled_api: Callable[..., ThrottledApi],
) -> None:
    # Given the usage plan's throttle of 1 request per key per second, and GET /notifications/{id} limited to a
    # burst of 2 at one request every two seconds for every key together
    api = throttled_api({
        "ResourcePath": "/~1notifications~1{id}", "HttpMethod": "GET",
        "ThrottlingRateLimit": 0.5, "ThrottlingBurstLimit": 2,
    })  # fmt: skip

    # When the first key calls twice, the second key once, and a second later the first key again
    first = [api.get("/notifications/n-1", api.first_key) for _ in range(2)]
    second = api.get("/notifications/n-1", api.second_key)
    api.clock.advance(1)
    first_again = api.get("/notifications/n-1", api.first_key)

    # Then the first key's second call hit its own usage-plan throttle while the second key still passed; a second
    # later the first key's bucket had refilled but the method's (two spent, half a token back) had not
    assert first == [200, 429]
    assert second == 200
    assert first_again == 429
    assert api.function.calls == {"/notifications/{id}": 2}
    assert api.get("/notifications/n-1") == 403  # no key: the built-in API_KEY response comes before any throttle


def test_wildcard_method_settings_apply_to_every_route_each_with_its_own_bucket(
    throttled_api: Callable[..., ThrottledApi],
) -> None:
    # Given stage-wide method settings (/* and *) of a burst of 1 with no refill
    api = throttled_api({"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 0, "ThrottlingBurstLimit": 1})

    # When every route is called twice (the keyed one by two different keys)
    live = [api.get("/health/live") for _ in range(2)]
    ready = [api.get("/health/ready") for _ in range(2)]
    keyed = [api.get("/notifications/n-1", api.first_key), api.get("/notifications/n-2", api.second_key)]

    # Then each route answered once and was throttled once: the wildcard reaches every method, keyed or not, and
    # spending one method's burst leaves the others' alone
    assert live == [200, 429]
    assert ready == [200, 429]
    assert keyed == [200, 429]


def test_more_specific_setting_overrides_the_stage_default(throttled_api: Callable[..., ThrottledApi]) -> None:
    # Given a stage default that throttles everything, and a looser setting for GET /health/ready
    api = throttled_api(
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 0, "ThrottlingBurstLimit": 0},
        {"ResourcePath": "/~1health~1ready", "HttpMethod": "GET", "ThrottlingBurstLimit": 3},
    )

    # When both health routes are called three times
    live = [api.get("/health/live") for _ in range(3)]
    ready = [api.get("/health/ready") for _ in range(3)]

    # Then /health/ready has its own burst (its rate from the default); /health/live has the default's
    assert live == [429, 429, 429]
    assert ready == [200, 200, 200]


def test_resource_path_written_without_tilde_one_is_refused_at_start(
    throttled_api: Callable[..., ThrottledApi],
) -> None:
    # Given / When a method setting addressed by the plain URL path, which CloudFormation does not take
    # Then the gateway is not built, and the error says how to write the path
    with pytest.raises(ValueError, match="write '/~1health~1live'"):
        throttled_api({"ResourcePath": "/health/live", "HttpMethod": "GET", "ThrottlingBurstLimit": 1})
