"""Template Conditions as CloudFormation evaluates them: Fn::If, condition functions, NoValue, conditional resources.

Each test writes a small SAM template to ``tmp_path`` and reads it through ``Stack.from_file``, so the SAM
translator's handling of conditions (passing ``Conditions`` through, copying a function's ``Condition``
onto the role, permissions and event source mappings it generates) is part of what is checked.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.routes import routes_from_body
from local.aws.provision import creation_order, provision
from local.aws.template import Stack
from local.lambda_.handlers import load_functions
from local.lambda_.pollers import sqs_event_sources

if TYPE_CHECKING:
    from pathlib import Path

    from local.runtime import AwsClients

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  InboundClientId:
    Type: String
    Default: ""
  Stage:
    Type: String
    Default: dev
  MaxRetries:
    Type: Number
    Default: 3
  ProducerPrincipals:
    Type: CommaDelimitedList
    Default: ""
Conditions:
  HasInboundClient: !Not [!Equals [!Ref InboundClientId, ""]]
  IsProd: !Equals [!Ref Stage, prod]
  InUsEast1: !Equals [!Ref AWS::Region, us-east-1]
  RetriesThrice: !Equals [!Ref MaxRetries, 3]
  HasProducers: !Not [!Equals [!Join ["", !Ref ProducerPrincipals], ""]]
  ProdWithClient: !And [!Condition IsProd, !Condition HasInboundClient]
  ProdOrClient: !Or [!Condition IsProd, !Condition HasInboundClient]
  NeitherProdNorClient: !Not [!Condition ProdOrClient]
Resources:
  Queue:
    Type: AWS::SQS::Queue
  ProdQueue:
    Type: AWS::SQS::Queue
    Condition: IsProd
  HeraldApiKey:
    Type: AWS::ApiGateway::ApiKey
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: api.app.lambda_handler
      Runtime: python3.11
      CodeUri: functions/
      Environment:
        Variables:
          AUDIENCE: !If [HasInboundClient, !Ref InboundClientId, !Ref HeraldApiKey]
          PROD_ONLY: !If [IsProd, "on", !Ref AWS::NoValue]
      Events:
        Send:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /notifications, Method: post}
  ProdWorker:
    Type: AWS::Serverless::Function
    Condition: IsProd
    Properties:
      Handler: worker.app.lambda_handler
      Runtime: python3.11
      CodeUri: functions/
      Events:
        Drain:
          Type: SQS
          Properties: {Queue: !GetAtt ProdQueue.Arn, BatchSize: 5}
        Inspect:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /worker, Method: get}
"""

NO_VALUE = {"Ref": "AWS::NoValue"}
DEFAULTS = {"InboundClientId": "", "Stage": "dev", "MaxRetries": "3", "ProducerPrincipals": ""}


def _stack(tmp_path: Path, text: str = TEMPLATE, region: str = "us-east-1", **parameters: str) -> Stack:
    """The template translated with every parameter given explicitly (so no HERALD_* variable leaks in)."""
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return Stack.from_file(path, overrides={**DEFAULTS, **parameters}, region=region)


def _provisioned(tmp_path: Path, aws: AwsClients, **parameters: str) -> Stack:
    """The template provisioned into moto under a fresh prefix: its API key exists there, with a real id."""
    stack = _stack(tmp_path, **parameters)
    stack.stack_name = f"t{uuid.uuid4().hex[:8]}"
    provision(stack, aws, stack.stack_name)
    return stack


def _handler(event: dict[str, Any], context: Any) -> None:
    """A stand-in handler, so loading functions imports no function code."""


def test_if_resolves_only_the_true_branch_when_the_condition_holds(tmp_path: Path) -> None:
    # Given an inbound client id, and no physical id yet for the API key the false branch names
    stack = _stack(tmp_path, InboundClientId="client-123")
    variables = stack.of_type("AWS::Lambda::Function")["ApiFunction"]["Environment"]["Variables"]

    # When the Fn::If is resolved
    audience = stack.resolve(variables["AUDIENCE"])

    # Then it is the client id, and the untaken Ref (which cannot resolve yet) was never looked at
    assert audience == "client-123"
    with pytest.raises(KeyError, match="HeraldApiKey"):
        stack.resolve({"Ref": "HeraldApiKey"})


def test_if_resolves_the_false_branch_when_the_condition_does_not_hold(tmp_path: Path, aws: AwsClients) -> None:
    # Given no inbound client id, and the API key created in the embedded AWS
    stack = _provisioned(tmp_path, aws, InboundClientId="")

    # When the function's environment is loaded
    functions = load_functions(stack, handlers={"ApiFunction": _handler})

    # Then the variable is the API key's id
    assert functions["ApiFunction"].environment["AUDIENCE"] == stack.physical_ids["HeraldApiKey"]


@pytest.mark.parametrize(
    ("stage", "client", "expected"),
    [
        (
            "dev",
            "",
            {"IsProd": False, "HasInboundClient": False, "ProdWithClient": False, "ProdOrClient": False},
        ),
        ("dev", "c", {"IsProd": False, "HasInboundClient": True, "ProdWithClient": False, "ProdOrClient": True}),
        ("prod", "", {"IsProd": True, "HasInboundClient": False, "ProdWithClient": False, "ProdOrClient": True}),
        ("prod", "c", {"IsProd": True, "HasInboundClient": True, "ProdWithClient": True, "ProdOrClient": True}),
    ],
)
def test_equals_not_and_or_and_condition_references_follow_the_parameters(
    tmp_path: Path, stage: str, client: str, expected: dict[str, bool]
) -> None:
    # Given the parameters of one deploy
    stack = _stack(tmp_path, Stage=stage, InboundClientId=client)

    # When every condition is evaluated
    values = {name: stack.condition(name) for name in expected}

    # Then each is the truth table's value, and Not of a Condition reference is its negation
    assert values == expected
    assert stack.condition("NeitherProdNorClient") is not expected["ProdOrClient"]


@pytest.mark.parametrize(("region", "expected"), [("us-east-1", True), ("eu-west-1", False)])
def test_equals_resolves_pseudo_parameters(tmp_path: Path, region: str, expected: bool) -> None:
    # Given the stack in one region
    stack = _stack(tmp_path, region=region)

    # When a condition on AWS::Region is evaluated
    in_us_east_1 = stack.condition("InUsEast1")

    # Then it compares the stack's region
    assert in_us_east_1 is expected


@pytest.mark.parametrize(("retries", "expected"), [("3", True), ("4", False)])
def test_equals_compares_numbers_as_text_like_cloudformation(tmp_path: Path, retries: str, expected: bool) -> None:
    # Given a Number parameter (a string, as every parameter value is) compared with a YAML integer
    stack = _stack(tmp_path, MaxRetries=retries)

    # When the condition is evaluated
    thrice = stack.condition("RetriesThrice")

    # Then "3" equals 3
    assert thrice is expected


@pytest.mark.parametrize(("principals", "expected"), [("", False), ("arn:a, arn:b", True)])
def test_a_comma_delimited_list_parameter_resolves_to_its_members(
    tmp_path: Path, principals: str, expected: bool
) -> None:
    # Given a CommaDelimitedList parameter, empty or with two space-separated members
    stack = _stack(tmp_path, ProducerPrincipals=principals)

    # When it is referenced, and a condition joins it
    members = stack.resolve({"Ref": "ProducerPrincipals"})
    has_producers = stack.condition("HasProducers")

    # Then Ref gives the trimmed members (one empty member for an empty value), and the condition follows them
    assert members == (["arn:a", "arn:b"] if expected else [""])
    assert has_producers is expected
    if expected:
        assert stack.resolve({"Fn::Select": [1, {"Ref": "ProducerPrincipals"}]}) == "arn:b"
        assert stack.resolve({"Fn::Join": ["|", {"Ref": "ProducerPrincipals"}]}) == "arn:a|arn:b"


def test_each_condition_is_evaluated_once_per_stack(tmp_path: Path) -> None:
    # Given a dev stack whose IsProd has been asked for once
    stack = _stack(tmp_path, Stage="dev")
    assert stack.condition("IsProd") is False

    # When the parameter changes afterwards
    stack.parameters["Stage"] = "prod"

    # Then the cached value stands, while a new stack from the same template evaluates afresh
    assert stack.condition("IsProd") is False
    assert _stack(tmp_path, Stage="prod").condition("IsProd") is True


def test_no_value_removes_dict_entries_and_list_items(tmp_path: Path) -> None:
    # Given a dev stack (IsProd false) and values whose Fn::If falls to AWS::NoValue
    stack = _stack(tmp_path, Stage="dev")
    value = {
        "Kept": "yes",
        "Dropped": {"Fn::If": ["IsProd", "on", NO_VALUE]},
        "Items": ["a", NO_VALUE, {"Fn::If": ["IsProd", "b", NO_VALUE]}, "c"],
        "Joined": {"Fn::Join": [",", ["a", {"Fn::If": ["IsProd", "b", NO_VALUE]}, "c"]]},
    }

    # When it is resolved
    resolved = stack.resolve(value)

    # Then the entry and the items are gone, as CloudFormation leaves them out
    assert resolved == {"Kept": "yes", "Items": ["a", "c"], "Joined": "a,c"}


def test_a_value_that_is_no_value_as_a_whole_resolves_to_none(tmp_path: Path) -> None:
    # Given a dev stack
    stack = _stack(tmp_path, Stage="dev")

    # When a value that is AWS::NoValue itself is resolved
    resolved = stack.resolve({"Fn::If": ["IsProd", "on", NO_VALUE]})

    # Then there is no value, not an empty string
    assert resolved is None


def test_no_value_inside_text_is_an_error(tmp_path: Path) -> None:
    # Given a dev stack
    stack = _stack(tmp_path, Stage="dev")

    # When AWS::NoValue is substituted into text, then it is refused, named
    with pytest.raises(ValueError, match="AWS::NoValue"):
        stack.resolve({"Fn::Sub": ["x-${Flag}", {"Flag": {"Fn::If": ["IsProd", "on", NO_VALUE]}}]})
    with pytest.raises(ValueError, match="AWS::NoValue"):
        stack.resolve({"Fn::Sub": "x-${AWS::NoValue}"})


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_function_environment_leaves_out_a_no_value_variable(tmp_path: Path, aws: AwsClients, stage: str) -> None:
    # Given the stack of one stage, provisioned (the API key its environment names is in the embedded AWS)
    stack = _provisioned(tmp_path, aws, Stage=stage)

    # When the functions are loaded
    environment = load_functions(stack, handlers={"ApiFunction": _handler})["ApiFunction"].environment

    # Then PROD_ONLY is set in prod only
    assert environment.get("PROD_ONLY") == ("on" if stage == "prod" else None)


@pytest.mark.parametrize(("stage", "exists"), [("dev", False), ("prod", True)])
def test_a_resource_whose_condition_is_false_does_not_exist(
    tmp_path: Path, aws: AwsClients, stage: str, exists: bool
) -> None:
    # Given the stack of one stage, provisioned (the API key its environment names is in the embedded AWS)
    stack = _provisioned(tmp_path, aws, Stage=stage)
    conditional = {"ProdQueue", "ProdWorker", "ProdWorkerRole", "ProdWorkerDrain"}

    # When its resources, functions, queue creation order and API routes are read
    resources = set(stack.resources)
    functions = set(load_functions(stack, handlers={"ApiFunction": _handler, "ProdWorker": _handler}))
    queues = creation_order(stack, {"AWS::SQS::Queue"})
    body = stack.resolve(stack.of_type("AWS::ApiGateway::RestApi")["Api"]["Body"])
    paths = {route.resource_path for route in routes_from_body(body, stack)}

    # Then the IsProd resources (and those SAM generated for them) are there in prod only
    assert (conditional <= resources) is exists
    assert conditional.isdisjoint(resources) is not exists
    assert ("ProdWorker" in stack.physical_ids) is exists
    assert functions == ({"ApiFunction", "ProdWorker"} if exists else {"ApiFunction"})
    assert queues == (["ProdQueue", "Queue"] if exists else ["Queue"])
    assert paths == ({"/notifications", "/worker"} if exists else {"/notifications"})


@pytest.mark.parametrize(("stage", "exists"), [("dev", False), ("prod", True)])
def test_provisioning_creates_only_the_resources_whose_condition_holds(
    tmp_path: Path, aws: AwsClients, stage: str, exists: bool
) -> None:
    # Given the stack of one stage under a fresh prefix
    prefix = f"t{uuid.uuid4().hex[:8]}"
    stack = _stack(tmp_path, Stage=stage)
    stack.stack_name = prefix

    # When it is provisioned into moto and its event sources are read
    provisioned = provision(stack, aws, prefix)
    sources = sqs_event_sources(stack)

    # Then the conditional queue and the mapping draining it exist in prod only
    assert set(provisioned.queues) == ({"ProdQueue", "Queue"} if exists else {"Queue"})
    listed = aws.client("sqs").list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", [])
    assert sorted(listed) == sorted(provisioned.queues.values())
    assert [(source.logical_id, source.batch_size) for source in sources] == (
        [("ProdWorkerDrain", 5)] if exists else []
    )


def test_an_unknown_condition_name_is_a_clear_error(tmp_path: Path) -> None:
    # Given a template whose Fn::If and whose resource name a condition it does not define
    stack = _stack(
        tmp_path,
        text=TEMPLATE.replace("    Condition: IsProd\n", "    Condition: IsProduction\n", 1),
    )

    # When they are resolved, then the error names the missing condition and the defined ones
    with pytest.raises(KeyError, match=r"condition Missing: not in the template's Conditions \(defined: .*IsProd"):
        stack.resolve({"Fn::If": ["Missing", "a", "b"]})
    with pytest.raises(KeyError, match="condition IsProduction"):
        _ = stack.resources


def test_a_condition_may_not_depend_on_a_resource(tmp_path: Path) -> None:
    # Given a condition comparing a queue's Ref, with that queue already named
    stack = _stack(tmp_path, text=TEMPLATE.replace("!Equals [!Ref Stage, prod]", "!Equals [!Ref Queue, prod]"))
    stack.physical_ids["Queue"] = "queue-url"

    # When it is evaluated, then it is refused: CloudFormation evaluates conditions before creating anything
    with pytest.raises(ValueError, match="condition IsProd may only use parameters and pseudo parameters"):
        stack.condition("IsProd")


def test_a_circular_condition_is_a_clear_error(tmp_path: Path) -> None:
    # Given two conditions that refer to each other
    stack = _stack(
        tmp_path, text=TEMPLATE.replace("!Equals [!Ref Stage, prod]", "!And [!Condition ProdOrClient, !Equals [a, a]]")
    )

    # When one is evaluated, then the cycle is named
    with pytest.raises(ValueError, match="circular through IsProd -> ProdOrClient -> IsProd"):
        stack.condition("IsProd")
