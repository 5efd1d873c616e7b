"""API keys live in the embedded AWS: the template's keys are provisioned there, and the gateway honours the keys
on the usage plan, including those created or revoked at run time with boto3 (as the admin function does)."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.gateway import ApiGateway
from local.apigateway.keys import MAX_AGE_SECONDS, MIN_REFRESH_INTERVAL_SECONDS, stored_key_value
from local.apigateway.proxy_event import HttpRequest
from local.apigateway.server import ApiServer
from local.aws.provision import provision
from local.aws.template import Stack
from tests.integration.local.conftest import unique_key_value
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from local.runtime import AwsClients
    from tests.integration.local.conftest import ProvisionedStack, Reply

UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "A valid x-api-key header is required"}}


@dataclass
class RecordingFunction:
    """The API and admin functions: record every event, answer 200."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        return {"statusCode": 200, "body": "{}"}


@dataclass
class KeyedApi:
    """The template's API served over HTTP, its keys in moto, the key directory on a hand-moved clock."""

    stack: Stack
    url: str
    gateway: ApiGateway
    function: RecordingFunction
    clock: FakeClock
    apigateway: Any  # the test's own client of moto's API Gateway (the gateway has another)
    aws_requests: list[str]  # every request the gateway's key directory sent to moto
    api_key: str
    admin_key: str

    @property
    def usage_plan_id(self) -> str:
        return self.stack.physical_ids["HeraldApiUsagePlan"]

    def get(self, http: Callable[..., Reply], api_key: str, path: str = "/notifications/n-1") -> Reply:
        return http("GET", f"{self.url}{path}", headers={"x-api-key": api_key})

    def create_client_key(self, *, on_plan: bool = True) -> tuple[str, str]:
        """A key made at run time as the admin function makes one: (value, id)."""
        value = unique_key_value("client")
        key_id = self.apigateway.create_api_key(name=f"client-{uuid.uuid4().hex[:8]}", enabled=True, value=value)["id"]
        if on_plan:
            self.apigateway.create_usage_plan_key(usagePlanId=self.usage_plan_id, keyId=key_id, keyType="API_KEY")
        return value, key_id


@pytest.fixture
def start_api(make_stack: Callable[..., ProvisionedStack], aws: AwsClients) -> Iterator[Callable[..., KeyedApi]]:
    servers: list[ApiServer] = []

    def start(clock: Callable[[], float] | None = None) -> KeyedApi:
        api_key, admin_key = unique_key_value("default-client"), unique_key_value("operator")
        stack = make_stack(api_key_values={"HeraldApiApiKey": api_key, "AdminApiKey": admin_key}).stack
        function = RecordingFunction()
        client = aws.client("apigateway")
        aws_requests: list[str] = []
        client.meta.events.register(
            "before-send.apigateway", lambda **kwargs: aws_requests.append(kwargs["request"].url)
        )
        fake_clock = FakeClock()
        functions = {stack.arns["ApiFunction"]: function, stack.arns["AdminFunction"]: function}
        gateway = ApiGateway.from_stack(stack, functions, client, key_clock=clock or fake_clock)
        server = ApiServer(gateway, 0).start()
        servers.append(server)
        return KeyedApi(
            stack, server.url, gateway, function, fake_clock, aws.client("apigateway"), aws_requests, api_key, admin_key
        )

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api(start_api: Callable[..., KeyedApi]) -> KeyedApi:
    return start_api()


def test_a_key_created_at_run_time_is_honoured_once_the_directory_refreshes(api: KeyedApi, http: Any) -> None:
    # Given the API serving, its key directory having just read the usage plan for the default client's request
    assert api.get(http, api.api_key).status == 200

    # When a key is created with boto3 and put on the usage plan, used at once, and used again a moment later
    value, key_id = api.create_client_key()
    at_once = api.get(http, value)
    api.clock.advance(MAX_AGE_SECONDS)
    later = api.get(http, value)

    # Then, as API Gateway propagates a new key, it is refused at first and then honoured, with its real id
    assert at_once.status == 401
    assert later.status == 200
    identity = api.function.events[-1]["requestContext"]["identity"]
    assert (identity["apiKey"], identity["apiKeyId"]) == (value, key_id)


@pytest.mark.parametrize("revoke", ["delete", "disable"])
def test_a_revoked_key_is_refused_with_the_api_key_response(api: KeyedApi, http: Any, revoke: str) -> None:
    # Given a run-time key that the gateway honours
    value, key_id = api.create_client_key()
    assert api.get(http, value).status == 200
    invocations = len(api.function.events)

    # When it is deleted or disabled with boto3, and used before and after the directory's max age
    if revoke == "delete":
        api.apigateway.delete_api_key(apiKey=key_id)
    else:
        disable = {"op": "replace", "path": "/enabled", "value": "false"}
        api.apigateway.update_api_key(apiKey=key_id, patchOperations=[disable])
    api.clock.advance(MAX_AGE_SECONDS - MIN_REFRESH_INTERVAL_SECONDS)
    before = api.get(http, value)
    api.clock.advance(MIN_REFRESH_INTERVAL_SECONDS)
    after = api.get(http, value)

    # Then it is honoured until the cached answer is a second old, then refused with the template's API_KEY
    # response, without reaching the function
    assert before.status == 200
    assert after.status == 401
    assert after.json() == UNAUTHORIZED
    assert len(api.function.events) == invocations + 1


def test_a_key_not_on_the_usage_plan_is_refused(api: KeyedApi, http: Any) -> None:
    # Given an enabled key that was never put on the usage plan
    value, _ = api.create_client_key(on_plan=False)

    # When it is used, long enough after its creation for any refresh
    api.clock.advance(MAX_AGE_SECONDS)
    reply = api.get(http, value)

    # Then API Gateway's API_KEY response answers and the function never runs
    assert reply.status == 401
    assert reply.json() == UNAUTHORIZED
    assert api.function.events == []


def test_the_admin_key_reaches_the_admin_routes_with_its_own_id(api: KeyedApi, http: Any) -> None:
    # Given the operator's key, provisioned on the usage plan
    # When it calls an admin route
    reply = api.get(http, api.admin_key, path="/admin/clients")

    # Then the gateway lets it through, naming the key by its id in the embedded AWS
    assert reply.status == 200
    identity = api.function.events[0]["requestContext"]["identity"]
    assert identity["apiKeyId"] == api.stack.physical_ids["AdminApiKey"]


class TickingClock:
    """Moves on by ``tick`` seconds every time it is read, whichever thread reads it."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.tick
            return self.now


def test_a_flood_of_unknown_keys_makes_only_a_handful_of_aws_requests(start_api: Callable[..., KeyedApi]) -> None:
    # Given the API on a clock that moves 1 ms per key lookup, so 1,000 lookups span one second
    api = start_api(clock=TickingClock(0.001))
    statuses: list[int] = []
    lock = threading.Lock()

    def flood(worker: int) -> None:
        for n in range(125):
            request = HttpRequest.from_target(
                "GET", "/notifications/n-1", [("x-api-key", f"bad-{worker}-{n}-{uuid.uuid4().hex}")], b"", "127.0.0.1"
            )
            status = api.gateway.handle(request).status
            with lock:
                statuses.append(status)

    # When eight threads send 1,000 requests with keys nobody issued
    threads = [threading.Thread(target=flood, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every one is refused, and the embedded AWS saw at most one read (two requests: the plan's keys and
    # the keys) per refresh interval of that second
    reads_allowed = 1 + round(1.0 / MIN_REFRESH_INTERVAL_SECONDS)
    assert statuses == [401] * 1000
    assert 2 <= len(api.aws_requests) <= 2 * reads_allowed
    assert api.function.events == []


def test_provisioned_keys_have_the_configured_values_and_are_on_the_usage_plan(
    make_stack: Callable[..., ProvisionedStack], aws: AwsClients
) -> None:
    # Given values for the default client's key and the operator's key
    values = {"HeraldApiApiKey": unique_key_value("default-client"), "AdminApiKey": unique_key_value("operator")}

    # When the template is provisioned with them
    provisioned = make_stack(api_key_values=values)
    stack, client = provisioned.stack, aws.client("apigateway")

    # Then each key is in moto under its Ref, enabled, with its value, on the usage plan whose throttle the
    # template gives (and the Refs are moto's ids)
    keys = {logical: client.get_api_key(apiKey=stack.physical_ids[logical], includeValue=True) for logical in values}
    assert {logical: (key["value"], key["enabled"]) for logical, key in keys.items()} == {
        logical: (value, True) for logical, value in values.items()
    }
    assert provisioned.provisioned.api_keys == {logical: key["id"] for logical, key in keys.items()}
    plan_id = stack.physical_ids["HeraldApiUsagePlan"]
    assert provisioned.provisioned.usage_plans == {"HeraldApiUsagePlan": plan_id}
    on_plan = {key["id"] for key in client.get_usage_plan_keys(usagePlanId=plan_id)["items"]}
    assert on_plan == {key["id"] for key in keys.values()}
    assert client.get_usage_plan(usagePlanId=plan_id)["throttle"] == {
        "rateLimit": float(stack.parameters["ApiThrottleRateLimit"]),
        "burstLimit": int(stack.parameters["ApiThrottleBurstLimit"]),
    }


def test_a_key_without_a_configured_value_gets_a_generated_one(
    make_stack: Callable[..., ProvisionedStack], aws: AwsClients
) -> None:
    # Given no configured values
    # When the template is provisioned
    stack = make_stack().stack

    # Then each key has 40 letters and digits, as API Gateway generates, and no two are the same
    client = aws.client("apigateway")
    values = [
        client.get_api_key(apiKey=stack.physical_ids[logical], includeValue=True)["value"]
        for logical in ("HeraldApiApiKey", "AdminApiKey")
    ]
    assert all(len(value) == 40 and value.isalnum() for value in values)
    assert len(set(values)) == 2


def test_a_configured_value_shorter_than_api_gateway_allows_is_stored_padded_and_still_works(
    make_stack: Callable[..., ProvisionedStack], aws: AwsClients, http: Any
) -> None:
    # Given a 14-character key, like the documented local-dev-key (API Gateway's minimum is 20)
    short = f"k-{uuid.uuid4().hex[:12]}"
    stack = make_stack(api_key_values={"HeraldApiApiKey": short}).stack
    client = aws.client("apigateway")

    # When the API is served and a client sends the short value
    gateway = ApiGateway.from_stack(stack, {stack.arns["ApiFunction"]: RecordingFunction()}, client)
    with ApiServer(gateway, 0) as server:
        reply = http("GET", f"{server.url}/notifications/n-1", headers={"x-api-key": short})

    # Then moto holds it padded, and the gateway takes the value as the client knows it
    stored = client.get_api_key(apiKey=stack.physical_ids["HeraldApiApiKey"], includeValue=True)["value"]
    assert stored == stored_key_value(short) != short
    assert reply.status == 200


def test_the_webhook_signing_secret_is_named_after_the_default_clients_key(
    make_stack: Callable[..., ProvisionedStack], aws: AwsClients
) -> None:
    # Given the template's WebhookSigningSecret, named herald-clients/${HeraldApiApiKey}/webhook-signing
    # When the template is provisioned
    provisioned = make_stack()

    # Then the secret exists under the default client's key id, and its Ref is that secret's ARN
    key_id = provisioned.stack.physical_ids["HeraldApiApiKey"]
    secret = aws.client("secretsmanager").describe_secret(SecretId=f"herald-clients/{key_id}/webhook-signing")
    assert secret["ARN"] == provisioned.stack.physical_ids["WebhookSigningSecret"]
    assert provisioned.provisioned.secrets["WebhookSigningSecret"] == secret["ARN"]


def test_a_value_for_a_key_the_template_lacks_is_refused(aws: AwsClients) -> None:
    # Given a value for a key the template does not have (a typo)
    stack = Stack.from_file()

    # When the template is provisioned with it
    # Then provisioning stops before creating anything, naming the key
    with pytest.raises(ValueError, match="HeraldApiKey"):
        provision(stack, aws, f"t{uuid.uuid4().hex[:8]}", api_key_values={"HeraldApiKey": "x" * 20})
