"""Delivery receipts: what providers report after they accepted a notification.

The API verifies each report's signature and queues it (`intake`); the `provider_events` function
reads the queue, normalises every report to a `ReceiptEvent` (`events`) and moves the notification's
status on by one conditional write (`store`), by rules kept pure in `transitions`: `sent` ->
`delivered`, `sent` or `delivered` -> `failed`, never backwards and never twice.
"""
