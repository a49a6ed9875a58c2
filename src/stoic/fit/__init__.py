"""stoic.fit: per-request failure injection (FIT).

A `Scenario` says which dependency fails, how, and for whom. A `FailurePlan` binds scenarios to one
request's identity and is the guard's injector for that request only. The plan travels between
services in one signed header (`HeaderCodec`) addressed to an audience of services, read by
`FitMiddleware` / `FitWSGIMiddleware` (each names its own service) and forwarded to our own hosts
only by `Forwarder` / `forward_hooks` (httpx). `Catalog` holds scenarios switched on for live
traffic; `Fit` (and the `fit` pytest fixture) fails dependencies inside a block. `FitWarning` flags
scenarios that are valid but probably not what was meant.
"""

from stoic.fit._asgi import FitMiddleware
from stoic.fit._catalog import Catalog, catalog
from stoic.fit._codec import DEFAULT_HEADER, HeaderCodec, SignedHeader
from stoic.fit._errors import FitWarning, InvalidHeader, InvalidScenario
from stoic.fit._forward import Forwarder, forward_hooks
from stoic.fit._identity import RequestIdentity
from stoic.fit._plan import FailurePlan, Injection, bind, current_plan
from stoic.fit._scenario import KINDS, Scenario
from stoic.fit._session import Fit
from stoic.fit._wsgi import FitWSGIMiddleware

__all__ = [
    "DEFAULT_HEADER",
    "KINDS",
    "Catalog",
    "FailurePlan",
    "Fit",
    "FitMiddleware",
    "FitWSGIMiddleware",
    "FitWarning",
    "Forwarder",
    "HeaderCodec",
    "Injection",
    "InvalidHeader",
    "InvalidScenario",
    "RequestIdentity",
    "Scenario",
    "SignedHeader",
    "bind",
    "catalog",
    "current_plan",
    "forward_hooks",
]
