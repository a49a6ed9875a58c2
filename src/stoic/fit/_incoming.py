"""What both middlewares do with an incoming request: identity from headers, plan from header + catalog."""

from __future__ import annotations

import re
from collections.abc import Callable

from stoic.fit._audience import check_service
from stoic.fit._catalog import Catalog
from stoic.fit._codec import HeaderCodec
from stoic.fit._identity import MAX_ID_LENGTH, RequestIdentity
from stoic.fit._plan import MAX_SCENARIOS, FailurePlan

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def check_header_name(field: str, name: str) -> str:
    """A header name, lower-cased; raises ValueError naming `field` if it is not a valid name."""
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"{field}: must be a header name of letters, digits and '-', got {name!r}")
    return name.lower()


def _clean(value: str | None) -> str | None:
    # identity headers come from outside: anything unusable counts as absent rather than failing the request
    if value is None or not value or len(value) > MAX_ID_LENGTH or not value.isprintable():
        return None
    return value


class IncomingPlan:
    """Builds the plan for one incoming request to the service called `service`.

    A header is honoured only if its audience admits `service`; one signed without an audience only
    if `allow_no_audience` is True. Any other header changes nothing and is logged as ignored.
    """

    def __init__(
        self,
        codec: HeaderCodec,
        catalog: Catalog | None,
        request_id_header: str,
        user_header: str,
        device_header: str,
        *,
        service: str,
        allow_no_audience: bool = False,
    ) -> None:
        if not isinstance(codec, HeaderCodec):
            raise TypeError(f"codec: must be a HeaderCodec, got {type(codec).__name__}")
        if catalog is not None and not isinstance(catalog, Catalog):
            raise TypeError(f"catalog: must be a Catalog or None, got {type(catalog).__name__}")
        if not isinstance(allow_no_audience, bool):
            raise TypeError(f"allow_no_audience: must be True or False, got {allow_no_audience!r}")
        self.codec = codec
        self.catalog = catalog
        self.service = check_service("service", service)
        self.allow_no_audience = allow_no_audience
        self.request_id_header = check_header_name("request_id_header", request_id_header)
        self.user_header = check_header_name("user_header", user_header)
        self.device_header = check_header_name("device_header", device_header)

    def plan(self, header: Callable[[str], str | None]) -> FailurePlan:
        """The plan for a request whose header values `header(name)` returns (None when absent)."""
        own = RequestIdentity(
            _clean(header(self.request_id_header)) or RequestIdentity.new().request_id,
            _clean(header(self.user_header)),
            _clean(header(self.device_header)),
        )
        signed = self.codec.read(
            header(self.codec.header), service=self.service, allow_no_audience=self.allow_no_audience
        )
        plan = FailurePlan((), own) if signed is None else signed.plan(own)
        if self.catalog is not None:
            plan.halted = self.catalog.halted  # halt-all stops the header's scenarios too
            taken = {s.name for s in plan.scenarios}
            for scenario in self.catalog.matching(plan.identity):
                if len(plan.scenarios) >= MAX_SCENARIOS:
                    break  # bounded: the header's scenarios come first
                if scenario.name not in taken:
                    plan.add(scenario)
        return plan
