"""pytest plugin: the review gate for unguarded outbound connections (registered through the
`pytest11` entry point).

    pytest --stoic-review=fail --stoic-review-allow '127.0.0.1:8000'

fails every test that opens a TCP connection outside a guarded call (other than to the allowed
addresses, e.g. the service under test), naming the line that made it; `warn` reports them as
warnings. A test can also hold its own code to it:

    def test_checkout_wraps_its_calls(stoic_review, client):
        client.post("/checkout")
        assert stoic_review.findings == []

`@pytest.mark.stoic_unguarded` exempts a test from the option (not from the fixture).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from stoic.guard.review import Review


class UnguardedConnection(UserWarning):
    """An outbound connection was made outside a guarded call."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stoic", "Stoic")
    group.addoption(
        "--stoic-review",
        choices=("off", "warn", "fail"),
        default="off",
        help="report (warn) or fail on outbound connections made outside a guarded call (default off)",
    )
    group.addoption(
        "--stoic-review-allow",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="an address that may be reached unguarded (glob patterns allowed; repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stoic_unguarded: this test may make unguarded connections")


@pytest.fixture
def stoic_review(request: pytest.FixtureRequest) -> Iterator[Review]:
    """A `Review` active for the test body: its `findings` list the unguarded connections."""
    with Review(request.config.getoption("stoic_review_allow")) as review:
        yield review


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    mode = item.config.getoption("stoic_review")
    if mode == "off" or item.get_closest_marker("stoic_unguarded") is not None:
        return (yield)
    review = Review(item.config.getoption("stoic_review_allow")).start()
    try:
        result = yield
    finally:
        review.stop()
    if review.findings:
        lines = "\n".join(f"  {f}" for f in review.findings)
        more = f"\n  ... and {review.dropped} more" if review.dropped else ""
        message = f"{len(review.findings) + review.dropped} unguarded connection(s):\n{lines}{more}"
        if mode == "fail":
            pytest.fail(message, pytrace=False)
        warnings.warn(UnguardedConnection(message), stacklevel=1)
    return result
