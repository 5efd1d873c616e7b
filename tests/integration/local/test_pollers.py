"""SQS event source mappings played by the pollers against a real moto server."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.lambda_.handlers import LocalFunction, load_functions
from local.lambda_.pollers import SqsEventSource, SqsPoller, sqs_event_sources
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from local.runtime import AwsClients

ESM = "SenderFunctionStandardQueue"
QUEUE = "StandardQueue"


@dataclass
class FakeSender:
    """A sender handler: records batches and contexts; reports the messages whose body is "fail" as failed."""

    response: Callable[[dict[str, Any]], Any] | None = None
    error: Exception | None = None
    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)
    remaining_ms: list[int] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.batches.append(event["Records"])
        self.contexts.append(context)
        self.remaining_ms.append(context.get_remaining_time_in_millis())
        if self.error is not None:
            raise self.error
        if self.response is not None:
            return self.response(event)
        failed = [record["messageId"] for record in event["Records"] if record["body"] == "fail"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


@dataclass
class ReceiveSpy:
    """The poller's SQS client, calling ``on_receive`` with the request and messages of every ReceiveMessage."""

    sqs: Any
    on_receive: Callable[[dict[str, Any], list[dict[str, Any]]], None]

    def receive_message(self, **request: Any) -> dict[str, Any]:
        response: dict[str, Any] = self.sqs.receive_message(**request)
        self.on_receive(request, response.get("Messages", []))
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)


@dataclass
class Subject:
    poller: SqsPoller
    sender: FakeSender
    function: LocalFunction
    queue_url: str
    dlq_url: str
    sqs: Any

    def send(self, *bodies: str, **extra: Any) -> None:
        entries = [{"Id": str(index), "MessageBody": body, **extra} for index, body in enumerate(bodies)]
        self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def depth(self, url: str | None = None) -> int:
        """Messages in the queue, visible or in flight."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def subject(make_stack: Callable[..., Any], aws: AwsClients) -> Iterator[Callable[..., Subject]]:
    """A poller for the template's StandardQueue mapping; the queue's visibility timeout cut to 1 s."""
    pollers: list[SqsPoller] = []

    def make(batch_size: int | None = None, **parameters: str) -> Subject:
        provisioned = make_stack(**parameters)
        stack = provisioned.stack
        sqs = aws.client("sqs")
        sqs.set_queue_attributes(QueueUrl=stack.physical_ids[QUEUE], Attributes={"VisibilityTimeout": "1"})
        sender = FakeSender()
        function = load_functions(stack, handlers={"SenderFunction": sender})["SenderFunction"]
        source: SqsEventSource = next(s for s in sqs_event_sources(stack) if s.logical_id == ESM)
        if batch_size is not None:
            source = dataclasses.replace(source, batch_size=batch_size)
        poller = SqsPoller(source, function.invoke, sqs, wait_seconds=1)
        pollers.append(poller)
        return Subject(poller, sender, function, stack.physical_ids[QUEUE], stack.physical_ids["DeadLetterQueue"], sqs)

    yield make
    for poller in pollers:
        poller.stop()


def _receive_one(subject: Subject, url: str, wait: int = 3) -> list[dict[str, Any]]:
    response = subject.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, MessageSystemAttributeNames=["All"]
    )
    messages: list[dict[str, Any]] = response.get("Messages", [])
    return messages


def test_event_source_mappings_come_from_the_template(make_stack: Callable[..., Any]) -> None:
    # Given the template provisioned with its default parameters
    stack = make_stack().stack

    # When its event sources are read
    sources = {source.logical_id: source for source in sqs_event_sources(stack)}

    # Then every SQS mapping of the sender is there, with its queue, batch size and partial batch responses
    assert set(sources) == set(stack.of_type("AWS::Lambda::EventSourceMapping"))
    standard = sources[ESM]
    assert standard.queue_url == stack.physical_ids[QUEUE]
    assert standard.queue_arn == stack.arns[QUEUE]
    assert standard.function_logical_id == "SenderFunction"
    assert standard.batch_size == int(stack.parameters["SenderBatchSize"])
    assert standard.report_batch_item_failures is True


def test_records_look_exactly_like_lambda_sqs_records(subject: Callable[..., Subject]) -> None:
    # Given a message with a string and a binary message attribute
    poll = subject()
    poll.send(
        '{"id": "n-1"}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "email"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )

    # When the poller delivers it
    assert poll.poller.poll_once() == 1

    # Then the record has Lambda's fields and shapes
    (record,) = poll.sender.batches[0]
    assert list(record) == [
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion",
    ]  # fmt: skip
    assert record["body"] == '{"id": "n-1"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"id": "n-1"}').hexdigest()  # noqa: S324 - SQS's checksum
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "email", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == poll.poller.source.queue_arn
    assert record["awsRegion"] == "us-east-1"


def test_handler_gets_a_lambda_context_with_the_function_timeout(subject: Callable[..., Subject]) -> None:
    # Given a message and the sender's template Timeout
    poll = subject()
    poll.send("ok")

    # When it is delivered
    poll.poller.poll_once()

    # Then the context names the function and counts down from its Timeout
    (context,) = poll.sender.contexts
    assert context.function_name == poll.function.name
    assert context.invoked_function_arn == poll.function.arn
    assert context.memory_limit_in_mb == poll.function.memory_mb
    assert context.aws_request_id
    assert 0 < poll.sender.remaining_ms[0] <= poll.function.timeout_seconds * 1000


def test_partial_batch_failure_deletes_the_successes_and_the_failure_comes_back(
    subject: Callable[..., Subject],
) -> None:
    # Given a batch of three where the handler reports one failed
    poll = subject()
    poll.send("ok-1", "fail", "ok-2")

    # When the poller processes the batch
    handled = poll.poller.poll_once()

    # Then the two successes are deleted and the failure reappears after the visibility timeout
    assert handled == 3
    assert [record["body"] for record in poll.sender.batches[0]] == ["ok-1", "fail", "ok-2"]
    assert poll.depth() == 1
    (again,) = _receive_one(poll, poll.queue_url)
    assert again["Body"] == "fail"
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


@pytest.mark.parametrize(
    ("response", "left"),
    [
        (lambda event: None, 0),
        (lambda event: {"batchItemFailures": []}, 0),
        (lambda event: {}, 0),
        (lambda event: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}, 2),
        (lambda event: {"batchItemFailures": [{"itemIdentifier": ""}]}, 2),
        (lambda event: {"batchItemFailures": [{"id": event["Records"][0]["messageId"]}]}, 2),
        (lambda event: "garbage", 2),
    ],
    ids=["null", "empty-list", "empty-object", "unknown-id", "empty-id", "bad-key", "not-an-object"],
)
def test_partial_batch_response_rules_follow_lambda(
    subject: Callable[..., Subject], response: Callable[[dict[str, Any]], Any], left: int
) -> None:
    # Given a handler answering with a given partial batch response
    poll = subject()
    poll.sender.response = response
    poll.send("a", "b")

    # When the batch is processed
    poll.poller.poll_once()

    # Then Lambda's rules decide: a null/empty response is full success, an invalid one fails the whole batch
    assert poll.depth() == left


def test_handler_exception_fails_the_whole_batch(subject: Callable[..., Subject]) -> None:
    # Given a handler that raises
    poll = subject()
    poll.sender.error = RuntimeError("boom")
    poll.send("a", "b")

    # When the batch is processed
    poll.poller.poll_once()

    # Then nothing is deleted
    assert poll.depth() == 2


def test_batch_size_is_honoured(subject: Callable[..., Subject]) -> None:
    # Given SenderBatchSize 2 (a template parameter) and five messages
    poll = subject(SenderBatchSize="2")
    poll.send("1", "2", "3", "4", "5")
    poller = dataclasses.replace(poll.poller, wait_seconds=0)  # short polls: the last, empty one returns at once

    # When the poller runs until the queue is empty
    while poller.poll_once():
        pass

    # Then no batch held more than two messages and every message was delivered once and deleted
    assert [len(batch) for batch in poll.sender.batches] == [2, 2, 1]
    assert sorted(record["body"] for batch in poll.sender.batches for record in batch) == ["1", "2", "3", "4", "5"]
    assert poll.depth() == 0


def test_batching_window_gathers_messages_that_arrive_during_it(subject: Callable[..., Subject]) -> None:
    # Given a 1 s batching window on a fake clock (short polls; the pause between them advances the clock)
    # and two messages waiting
    poll = subject(SenderBatchingWindowSeconds="1")
    clock = FakeClock()
    opened = clock()
    late = ["late-1", "late-2"]

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        if late and clock() - opened >= 0.3:  # 0.3 s into the window, two more arrive
            poll.send(*late)
            late.clear()

    poller = dataclasses.replace(poll.poller, wait_seconds=0, clock=clock, sleep=sleep)
    poll.send("early-1", "early-2")

    # When two more arrive while the window is open
    handled = poller.poll_once()

    # Then one invocation got all four, once the window's 1 s had passed
    assert handled == 4
    assert not late
    assert len(poll.sender.batches) == 1
    assert sorted(record["body"] for record in poll.sender.batches[0]) == ["early-1", "early-2", "late-1", "late-2"]
    assert clock() - opened == pytest.approx(1)


def test_a_message_received_again_during_the_window_is_in_the_batch_once(subject: Callable[..., Subject]) -> None:
    # Given a 3 s batching window on a fake clock, longer than the queue's 1 s visibility timeout, and one
    # message; the window's clock runs out as soon as the message has been received again (moto makes it
    # visible again after 1 s of wall time: that second is the only real wait)
    poll = subject(SenderBatchingWindowSeconds="3")
    clock = FakeClock()

    def close_window_once_received_again(request: dict[str, Any], messages: list[dict[str, Any]]) -> None:
        if any(message["Attributes"]["ApproximateReceiveCount"] == "2" for message in messages):
            clock.advance(3)
        elif not messages:  # an empty long poll spent its wait: the window still closes if it never comes back
            clock.advance(request["WaitTimeSeconds"])

    spy = ReceiveSpy(poll.sqs, close_window_once_received_again)
    poller = dataclasses.replace(poll.poller, clock=clock, sqs=spy)
    poll.send("only")

    # When the poller gathers a batch (the message becomes visible again, and is received again, meanwhile)
    poller.poll_once()

    # Then the invocation saw it once, with its latest receipt, and deleting it with that receipt emptied the queue
    assert [[record["body"] for record in batch] for batch in poll.sender.batches] == [["only"]]
    assert poll.sender.batches[0][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert poll.depth() == 0


def test_message_failing_max_receive_count_times_lands_in_the_dead_letter_queue(
    subject: Callable[..., Subject], wait_until: Callable[..., Any]
) -> None:
    # Given MaxReceiveCount 2 (template parameter), a 1 s visibility timeout and a message that always fails
    poll = subject(MaxReceiveCount="2")
    poll.send("fail")

    # When the poller runs in the background
    with poll.poller:
        wait_until(lambda: poll.depth(poll.dlq_url) == 1, timeout=15)

    # Then SQS moved it to the DLQ after exactly two failed deliveries, and the source queue is empty
    assert [len(batch) for batch in poll.sender.batches] == [1, 1]
    assert poll.depth() == 0
    (dead,) = _receive_one(poll, poll.dlq_url, wait=1)
    assert dead["Body"] == "fail"


def test_short_polls_that_find_nothing_pause_instead_of_spinning(subject: Callable[..., Subject]) -> None:
    # Given a poller making short polls (HERALD_POLL_WAIT_SECONDS=0) on an empty queue, whose pauses are
    # recorded; the third pause stops it
    poll = subject()
    pauses: list[float] = []
    receives: list[int] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            poller.request_stop()

    class CountingSqs:
        def __getattr__(self, name: str) -> Any:
            return getattr(poll.poller.sqs, name)

        def receive_message(self, **kwargs: Any) -> Any:
            receives.append(kwargs["WaitTimeSeconds"])
            return poll.poller.sqs.receive_message(**kwargs)

    poller = dataclasses.replace(poll.poller, wait_seconds=0, sleep=pause, sqs=CountingSqs())

    # When the poller's loop runs until it is stopped
    poller._run()

    # Then every empty short poll was followed by a pause, rather than the next poll at once
    assert receives == [0, 0, 0]
    assert pauses == [0.1, 0.1, 0.1]
    assert poll.sender.batches == []
