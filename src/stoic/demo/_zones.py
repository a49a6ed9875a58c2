"""Zone-aware calls: own zone first, then the region's other zones, each zone behind its own breaker."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx

from stoic.guard import BreakerPolicy, Dependency, Registry, SemaphoreBulkhead


class NoZoneAnswered(Exception):
    """Every zone of the region failed or was short-circuited for this call."""

    def __init__(self, service: str, causes: list[tuple[str, BaseException]]) -> None:
        self.service = service
        self.causes = causes
        detail = "; ".join(f"{zone}: {type(err).__name__}" for zone, err in causes)
        super().__init__(f"{service}: no zone answered ({detail})")


class Answer(NamedTuple):
    """A zone's answer: the JSON body, the zone, and whether a preferred zone failed first."""

    body: Any
    zone: str
    failed_over: bool


class ClientError(Exception):
    """The service refused the request itself (4xx): not a sign the service is unhealthy."""


# A dead zone answers "connection refused" in microseconds, so a small window trips quickly and a
# short open time lets a replaced instance back in soon.
ZONE_BREAKER = BreakerPolicy(
    window=4.0, buckets=8, min_calls=5, error_rate=0.5, open_for=1.5, ignore=(ClientError,)
)


class ZonePool:
    """One service seen from one caller: a guarded instance per zone, tried in preference order.

    `urls` maps zone -> base URL, own zone first. `rotate=n` spreads calls over the first `n` zones
    (a caller that lives in no zone, like a regional load balancer): the starting one turns per call,
    and the remaining zones keep their order behind them.
    """

    def __init__(
        self,
        service: str,
        urls: Mapping[str, str],
        client: httpx.AsyncClient,
        *,
        timeout: float,
        registry: Registry | None = None,
        rotate: int = 0,
        owner: str | None = None,
    ) -> None:
        if not urls:
            raise ValueError(f"{service}: urls must name at least one zone")
        self.service = service
        self._urls = dict(urls)
        self._zones = list(self._urls)
        self._client = client
        self._rotate = rotate
        self._turn = itertools.count()
        extra: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.zones = {
            zone: Dependency(
                f"{service}@{zone}",
                timeout=timeout,
                breaker=ZONE_BREAKER,
                bulkhead=SemaphoreBulkhead(max_concurrent=64),
                owner=owner,
                **extra,
            )
            for zone in self._zones
        }

    def order(self) -> list[str]:
        """The zones to try for the next call, in order."""
        n = min(self._rotate, len(self._zones))
        if n < 2:
            return self._zones
        k = next(self._turn) % n
        head = self._zones[:n]
        return head[k:] + head[:k] + self._zones[n:]

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """The JSON body and who answered; raises `NoZoneAnswered` when no zone did."""
        causes: list[tuple[str, BaseException]] = []
        for zone in self.order():
            try:
                body = await self.zones[zone].acall(self._send, method, self._urls[zone] + path, kwargs)
            except ClientError:
                raise
            except Exception as exc:  # breaker open, refused, timed out, 5xx: try the next zone
                causes.append((zone, exc))
                continue
            return Answer(body, zone, bool(causes))
        raise NoZoneAnswered(self.service, causes)

    async def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> Any:
        resp = await self._client.request(method, url, **kwargs)
        if 400 <= resp.status_code < 500:
            raise ClientError(f"{self.service} answered {resp.status_code}: {resp.text[:200]}")
        resp.raise_for_status()
        return resp.json()
