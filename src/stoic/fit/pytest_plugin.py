"""pytest plugin: the `fit` fixture (registered through the `pytest11` entry point).

    def test_home_survives_personalisation(fit):
        fit.fail("personalisation", kind="error")
        assert home("u1").source == "popular"
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from stoic.fit._session import Fit


@pytest.fixture
def fit() -> Iterator[Fit]:
    """Fail dependencies for this test only: `fit.fail("personalisation", kind="error")`."""
    # imported here so loading the plugin costs nothing for test runs that never ask for `fit`
    from stoic.fit._session import Fit

    with Fit() as session:
        yield session
