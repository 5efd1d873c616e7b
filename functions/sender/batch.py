"""Powertools' `BatchProcessor`, with the records of one batch processed concurrently in a bounded pool.

Delivery is I/O: a provider call waits on the network most of its time. Processing a batch of 10 one
by one makes the batch as slow as the sum of its calls; a pool makes it about as slow as the slowest.
Everything else (partial batch responses, failure bookkeeping) is Powertools' own: only `process`, the
loop over the records, is replaced.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable


class ConcurrentBatchProcessor(BatchProcessor):
    """A `BatchProcessor` whose record handler runs on up to `max_workers` threads at once.

    The record handler must be thread-safe. Each worker carries the invocation's log keys (request id,
    cold start), which Powertools keeps per thread.
    """

    def __init__(self, event_type: EventType, *, max_workers: int, raise_on_entire_batch_failure: bool = False) -> None:
        super().__init__(event_type=event_type, raise_on_entire_batch_failure=raise_on_entire_batch_failure)
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers

    def process(self) -> list[tuple[Any, ...]]:
        records = list(self.records)
        workers = min(self.max_workers, len(records))
        if workers <= 1:
            return super().process()
        keys = logger.thread_safe_get_current_keys()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery") as pool:
            return list(pool.map(self._with_keys(keys, self._process_record), records))

    @staticmethod
    def _with_keys(keys: dict[str, Any], work: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(record: Any) -> Any:
            logger.thread_safe_append_keys(**keys)
            try:
                return work(record)
            finally:
                logger.thread_safe_clear_keys()

        return run
