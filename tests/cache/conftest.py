"""Real cache servers for the cache tests: memcached processes and embedded Valkey."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stoic.cache import EmbeddedValkey, LocalMemcached, ZonalCache
from stoic.guard import Registry

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"
_ids = itertools.count()
Fleet = LocalMemcached | EmbeddedValkey


@pytest.fixture(scope="module")
def memcached3() -> Iterator[LocalMemcached]:
    """3 zones x 2 memcached processes, shared by a module's tests (keys are unique per test)."""
    with LocalMemcached(zones=3, per_zone=2, binary=MEMCACHED) as servers:
        yield servers


@pytest.fixture(scope="module")
def valkey3() -> Iterator[EmbeddedValkey]:
    """3 zones x 1 embedded Valkey server, shared by a module's tests."""
    with EmbeddedValkey(zones=3, per_zone=1) as servers:
        yield servers


@pytest.fixture
def make_cache() -> Iterator[Callable[..., ZonalCache]]:
    """Build ZonalCaches on a private guard registry; all are closed at the end of the test."""
    made: list[ZonalCache] = []

    def make(servers: Fleet, local_zone: str = "zone-a", **options: Any) -> ZonalCache:
        options.setdefault("registry", Registry())
        options.setdefault("name", f"test{next(_ids)}")
        cache = ZonalCache(servers.zones, local_zone, backend=servers.backend, **options)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to the test, so tests sharing servers never see each other's keys."""
    return f"t{next(_ids)}:{request.node.name[:40]}:".replace(" ", "_").replace("[", "_").replace("]", "_")
