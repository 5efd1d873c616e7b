"""The rules of delivery receipts: `sent` -> `delivered`, `sent`/`delivered` -> `failed`, never backwards, never twice.

The writes are applied to a dict item with the conditional-write semantics DynamoDB follows
(`resilience.conditional.apply_update` / `holds_all`), as `ReceiptStore` renders them to DynamoDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from notifications import records
from notifications.models import HistoryEntry, Recipient, Status
from notifications.ports import MAX_HISTORY
from notifications.receipts.events import ReceiptEvent, ReceiptOutcome, ReceiptProvider
from notifications.receipts.transitions import ReceiptResult, Verdict, change, judge, result_of
from resilience.conditional import apply_update, holds_all
from tests.support.clock import FakeClock
from tests.support.records import make_record

if TYPE_CHECKING:
    from resilience.conditional import Value


def _receipt(outcome: ReceiptOutcome, detail: str = "", *, event_id: str = "e-1") -> ReceiptEvent:
    words = {
        ReceiptOutcome.DELIVERED: "sendgrid reported delivered",
        ReceiptOutcome.FAILED: "sendgrid reported bounce (type bounce, SMTP status 5.1.1)",
        ReceiptOutcome.NOTHING: "sendgrid reported open",
    }
    return ReceiptEvent(
        notification_id="n-1",
        provider=ReceiptProvider.SENDGRID,
        outcome=outcome,
        event_id=event_id,
        occurred_at=1_700_000_000.0,
        detail=detail or words[outcome],
    )


def _item(status: Status, **overrides: object) -> dict[str, Value]:
    fields: dict[str, object] = {
        "status": status,
        "channel": "email",
        "recipient": Recipient(email="ada@example.com"),
        "subject": "Your code",
        "provider": "sendgrid",
        "history": [HistoryEntry(status=Status.QUEUED, at="2026-11-29T03:00:00.000Z", detail="accepted")],
    }
    record = make_record(**(fields | overrides))
    return records.to_attributes(record)


def _apply(item: dict[str, Value], receipt: ReceiptEvent, now: float) -> tuple[ReceiptResult, dict[str, Value]]:
    """What `ReceiptStore.apply` does, on a dict: judge the record as read, then one conditional write."""
    verdict = judge(records.from_attributes(item).status, receipt.outcome)
    if verdict is not Verdict.APPLY:
        return result_of(verdict), item
    update, condition = change(records.from_attributes(item), receipt, now=now)
    assert holds_all(item, condition)
    return ReceiptResult.APPLIED, apply_update(item, update)


# ---------------------------------------------------------------------- the rules
@pytest.mark.parametrize(
    ("status", "outcome", "verdict"),
    [
        (Status.SENT, ReceiptOutcome.DELIVERED, Verdict.APPLY),
        (Status.SENT, ReceiptOutcome.FAILED, Verdict.APPLY),
        (Status.DELIVERED, ReceiptOutcome.FAILED, Verdict.APPLY),  # a later bounce outranks a delivery report
        (Status.DELIVERED, ReceiptOutcome.DELIVERED, Verdict.IGNORE),  # a duplicate
        (Status.FAILED, ReceiptOutcome.DELIVERED, Verdict.IGNORE),  # a late delivery never undoes a bounce
        (Status.FAILED, ReceiptOutcome.FAILED, Verdict.IGNORE),
        (Status.DEAD_LETTERED, ReceiptOutcome.DELIVERED, Verdict.IGNORE),
        (Status.DEAD_LETTERED, ReceiptOutcome.FAILED, Verdict.IGNORE),
        (Status.QUEUED, ReceiptOutcome.DELIVERED, Verdict.NOT_YET),  # the callback outran the sender's write
        (Status.QUEUED, ReceiptOutcome.FAILED, Verdict.NOT_YET),
        (Status.DEFERRED, ReceiptOutcome.DELIVERED, Verdict.NOT_YET),
        (Status.DEFERRED, ReceiptOutcome.FAILED, Verdict.NOT_YET),
        (Status.SENT, ReceiptOutcome.NOTHING, Verdict.IGNORE),
        (Status.QUEUED, ReceiptOutcome.NOTHING, Verdict.IGNORE),
    ],
)
def test_what_a_receipt_does_to_a_record_in_each_status(
    status: Status, outcome: ReceiptOutcome, verdict: Verdict
) -> None:
    # Given a record in `status` and a receipt with `outcome`
    # When / Then the rules decide as documented
    assert judge(status, outcome) is verdict


def test_every_status_and_outcome_has_a_verdict() -> None:
    # Given / When / Then the rules are total: no combination raises
    for status in Status:
        for outcome in ReceiptOutcome:
            assert judge(status, outcome) in set(Verdict)


# ---------------------------------------------------------------------- applying receipts
def test_a_delivery_report_moves_a_sent_record_to_delivered() -> None:
    # Given a sent record
    clock = FakeClock()
    item = _item(Status.SENT)

    # When SendGrid's delivery report is applied
    result, after = _apply(item, _receipt(ReceiptOutcome.DELIVERED), clock())

    # Then it is delivered, one version on, with the report at the end of its history
    record = records.from_attributes(after)
    assert result is ReceiptResult.APPLIED
    assert record.status is Status.DELIVERED
    assert record.version == 2
    assert record.updated_at == "2023-11-14T22:13:20.000Z"
    assert record.reason == "delivered: sendgrid reported delivered"
    assert record.error is None
    assert [entry.status for entry in record.history] == [Status.QUEUED, Status.DELIVERED]
    assert record.history[-1].detail == "sendgrid reported delivered at 2023-11-14T22:13:20.000Z"


def test_a_duplicate_delivery_report_changes_nothing() -> None:
    # Given a record already delivered by a first copy of the report
    clock = FakeClock()
    _, delivered = _apply(_item(Status.SENT), _receipt(ReceiptOutcome.DELIVERED), clock())

    # When the same report arrives again (SendGrid and SQS both deliver at least once)
    clock.advance(30)
    result, after = _apply(delivered, _receipt(ReceiptOutcome.DELIVERED), clock())

    # Then it is ignored and the record is exactly as it was
    assert result is ReceiptResult.IGNORED
    assert after == delivered


def test_a_bounce_after_a_delivery_report_fails_the_notification() -> None:
    # Given a record that a delivery report moved to delivered
    clock = FakeClock()
    _, delivered = _apply(_item(Status.SENT), _receipt(ReceiptOutcome.DELIVERED), clock())

    # When a bounce for it arrives later
    clock.advance(60)
    result, after = _apply(delivered, _receipt(ReceiptOutcome.FAILED), clock())

    # Then the bounce wins: failed, with the provider's words as the error, history in order
    record = records.from_attributes(after)
    assert result is ReceiptResult.APPLIED
    assert record.status is Status.FAILED
    assert record.error == "sendgrid reported bounce (type bounce, SMTP status 5.1.1)"
    assert (
        record.reason
        == "failed after the provider accepted it: sendgrid reported bounce (type bounce, SMTP status 5.1.1)"
    )
    assert record.version == 3
    assert [entry.status for entry in record.history] == [Status.QUEUED, Status.DELIVERED, Status.FAILED]


def test_a_delivery_report_after_a_bounce_never_undoes_it() -> None:
    # Given a record failed by a bounce (the reports arrived out of order)
    clock = FakeClock()
    _, failed = _apply(_item(Status.SENT), _receipt(ReceiptOutcome.FAILED), clock())

    # When the earlier delivery report arrives late
    clock.advance(5)
    result, after = _apply(failed, _receipt(ReceiptOutcome.DELIVERED), clock())

    # Then it is ignored: the record stays failed, untouched
    assert result is ReceiptResult.IGNORED
    assert after == failed
    assert records.from_attributes(after).status is Status.FAILED


def test_a_report_before_the_sender_recorded_sent_waits_and_applies_later() -> None:
    # Given a record still queued: the provider's callback outran the sender's own status write
    clock = FakeClock()
    queued = _item(Status.QUEUED)

    # When the delivery report is applied
    early, unchanged = _apply(queued, _receipt(ReceiptOutcome.DELIVERED), clock())

    # Then it must come back later, and nothing was written
    assert early is ReceiptResult.NOT_YET
    assert unchanged == queued

    # When the sender has recorded sent and the report comes back
    sent = {**queued, records.STATUS: Status.SENT.value, records.VERSION: 2}
    later, after = _apply(sent, _receipt(ReceiptOutcome.DELIVERED), clock())

    # Then it applies
    assert later is ReceiptResult.APPLIED
    assert records.from_attributes(after).status is Status.DELIVERED


def test_a_write_built_from_a_stale_read_does_not_land() -> None:
    # Given a delivery report and a bounce judged on the same sent record by two invocations at once
    clock = FakeClock()
    item = _item(Status.SENT)
    record = records.from_attributes(item)
    delivered_write = change(record, _receipt(ReceiptOutcome.DELIVERED), now=clock())
    bounce_write = change(record, _receipt(ReceiptOutcome.FAILED), now=clock())

    # When the delivery report lands first
    assert holds_all(item, delivered_write[1])
    after_delivery = apply_update(item, delivered_write[0])

    # Then the bounce's write, built from the older read, does not land although `failed` may follow
    # `delivered`: it would rewrite the history without the delivery's entry. The bounce is judged again
    # on the record as it now is, and then applies.
    assert not holds_all(after_delivery, bounce_write[1])
    result, after = _apply(after_delivery, _receipt(ReceiptOutcome.FAILED), clock())
    assert result is ReceiptResult.APPLIED
    history = records.from_attributes(after).history
    assert [entry.status for entry in history] == [Status.QUEUED, Status.DELIVERED, Status.FAILED]


def test_a_delivery_report_judged_before_a_bounce_landed_does_not_land_after_it() -> None:
    # Given the same two receipts judged at once, the bounce landing first
    item = _item(Status.SENT)
    record = records.from_attributes(item)
    delivered_write = change(record, _receipt(ReceiptOutcome.DELIVERED), now=1.0)
    bounce_write = change(record, _receipt(ReceiptOutcome.FAILED), now=1.0)
    after_bounce = apply_update(item, bounce_write[0])

    # When / Then the delivery report's write cannot move the record back to delivered
    assert not holds_all(after_bounce, delivered_write[1])


def test_a_write_never_lands_on_a_status_the_receipt_does_not_apply_from() -> None:
    # Given a delivery report's write judged on a sent record
    item = _item(Status.SENT)
    update, condition = change(records.from_attributes(item), _receipt(ReceiptOutcome.DELIVERED), now=1.0)

    # When the record is failed meanwhile by a writer that kept the version (none should, but if one did)
    failed_same_version = {**item, records.STATUS: Status.FAILED.value}

    # Then the status condition alone still refuses the write
    assert not holds_all(failed_same_version, condition)
    assert holds_all(item, condition)
    assert apply_update(item, update)[records.STATUS] == Status.DELIVERED.value


def test_the_history_stays_bounded() -> None:
    # Given a sent record whose history is already full
    full = [HistoryEntry(status=Status.QUEUED, at=f"2026-11-29T03:00:{i:02d}.000Z") for i in range(MAX_HISTORY)]
    item = _item(Status.SENT, history=full)

    # When a delivery report is applied
    _, after = _apply(item, _receipt(ReceiptOutcome.DELIVERED), 1_800_000_000.0)

    # Then the history keeps its first entry and the newest, at most MAX_HISTORY
    history = records.from_attributes(after).history
    assert len(history) == MAX_HISTORY
    assert history[0] == full[0]
    assert history[-1].status is Status.DELIVERED


def test_the_write_holds_only_the_receipts_plain_words() -> None:
    # Given a sent email notification to a personal address
    item = _item(Status.SENT)

    # When a bounce is applied
    update, _ = change(records.from_attributes(item), _receipt(ReceiptOutcome.FAILED), now=1.0)

    # Then the write sets status, time, reason, error and history, and nothing mentions the address
    assert set(update.set) == {"status", "updated_at", "reason", "error", "history"}
    assert dict(update.add) == {"version": 1}
    assert "ada@example.com" not in repr(update)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(Status.QUEUED, ReceiptOutcome.DELIVERED), (Status.FAILED, ReceiptOutcome.DELIVERED), (Status.SENT, "nothing")],
)
def test_a_write_is_refused_for_a_receipt_that_does_not_apply(status: Status, outcome: str) -> None:
    # Given a receipt the rules do not apply to this record
    record = records.from_attributes(_item(status))

    # When / Then no write can be built for it
    with pytest.raises(ValueError, match="does not apply"):
        change(record, _receipt(ReceiptOutcome(outcome)), now=1.0)


def test_a_verdict_to_apply_has_no_result_until_the_write_lands() -> None:
    # Given / When / Then only the verdicts that write nothing have a result of their own
    assert result_of(Verdict.IGNORE) is ReceiptResult.IGNORED
    assert result_of(Verdict.NOT_YET) is ReceiptResult.NOT_YET
    with pytest.raises(ValueError, match="write lands"):
        result_of(Verdict.APPLY)
