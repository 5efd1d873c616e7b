"""A scripted stand-in for urllib3's `PoolManager`, so the providers' real `ProviderHttp` runs without a network."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeResponse:
    """What urllib3 answers: status, headers and a body read through `read`."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def read(self, amount: int, decode_content: bool = True) -> bytes:
        return self.body[:amount]

    def release_conn(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class FakePool:
    """A `urllib3.PoolManager` stand-in: records each request and answers the next scripted response."""

    answers: list[FakeResponse | Exception]
    requests: list[dict[str, Any]] = field(default_factory=list)

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        self.requests.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
