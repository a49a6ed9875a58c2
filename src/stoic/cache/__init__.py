"""stoic.cache: a zone-replicated cache client over memcached or Valkey/Redis (EVCache-style).

Example, with three zones of embedded Valkey servers::

    from stoic.cache import EmbeddedValkey

    with EmbeddedValkey(zones=3, per_zone=2) as servers, servers.cache("zone-a") as cache:
        cache.set("title:42", {"name": "Stoic"}, ttl=60, policy="quorum").wait(1.0)
        cache.get("title:42")    # {'name': 'Stoic'}

`AsyncZonalCache` is the same cache for asyncio.
"""

from ._acache import AsyncCount, AsyncZonalCache
from ._anodes import ASYNC_BACKENDS, AsyncMemcachedNode, AsyncNode, AsyncValkeyNode
from ._awriter import AsyncLatch
from ._backends import BACKENDS, MemcachedNode, Node, NodeFactory, ValkeyNode
from ._cache import DEFAULT_BREAKER, DEFAULT_CHUNK_SIZE, ZonalCache
from ._errors import CacheError, CorruptValue, InvalidConfig, InvalidKey, InvalidTTL, InvalidValue
from ._keys import MAX_HASHED_KEY_BYTES, MAX_KEY_BYTES, MAX_TTL, check_key, check_long_key, check_ttl
from ._latch import Count, Latch, LatchSpec, Policy
from ._metrics import CacheMetrics
from ._ring import HashRing
from ._serializers import PlainSerializer, Serializer
from ._servers import EmbeddedValkey, LocalMemcached, free_port
from ._warm import Progress, WarmReport
from ._wire import ReplyTooLarge
from ._zone import Server, Zone

__all__ = [
    "ASYNC_BACKENDS",
    "BACKENDS",
    "DEFAULT_BREAKER",
    "DEFAULT_CHUNK_SIZE",
    "MAX_HASHED_KEY_BYTES",
    "MAX_KEY_BYTES",
    "MAX_TTL",
    "AsyncCount",
    "AsyncLatch",
    "AsyncMemcachedNode",
    "AsyncNode",
    "AsyncValkeyNode",
    "AsyncZonalCache",
    "CacheError",
    "CacheMetrics",
    "CorruptValue",
    "Count",
    "EmbeddedValkey",
    "HashRing",
    "InvalidConfig",
    "InvalidKey",
    "InvalidTTL",
    "InvalidValue",
    "Latch",
    "LatchSpec",
    "LocalMemcached",
    "MemcachedNode",
    "Node",
    "NodeFactory",
    "PlainSerializer",
    "Policy",
    "Progress",
    "ReplyTooLarge",
    "Serializer",
    "Server",
    "ValkeyNode",
    "WarmReport",
    "ZonalCache",
    "Zone",
    "check_key",
    "check_long_key",
    "check_ttl",
    "free_port",
]
