"""The made-up world the platform serves: titles, members, devices. Deterministic, no data files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TITLE_COUNT = 48
DEVICE_TYPES: tuple[str, ...] = ("tv", "phone", "browser", "console", "tablet")
PLANS: tuple[str, ...] = ("basic", "standard", "premium")
#: the best rendition each plan may stream
PLAN_HEIGHT: dict[str, int] = {"basic": 480, "standard": 1080, "premium": 2160}
SEGMENT_SECONDS = 0.5  # media seconds per segment on the compressed clock
SEGMENTS_PER_TITLE = 240

_ADJECTIVES = (
    "Quiet",
    "Crimson",
    "Last",
    "Hidden",
    "Northern",
    "Paper",
    "Silver",
    "Broken",
    "Endless",
    "Wild",
    "Glass",
    "Midnight",
)
_NOUNS = ("Harbour", "Signal", "Kingdom", "Orchard", "Frontier", "Circuit", "Lantern", "Tide")


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest(), "big")


def title_id(index: int) -> str:
    """The id of title number `index`: ``t007``."""
    return f"t{index:03d}"


def title_name(tid: str) -> str:
    """A readable name for a title id: ``t007`` -> ``Last Circuit``."""
    n = int(tid[1:])
    return f"{_ADJECTIVES[n % len(_ADJECTIVES)]} {_NOUNS[(n // len(_ADJECTIVES)) % len(_NOUNS)]}"


TITLES: tuple[str, ...] = tuple(title_id(i) for i in range(TITLE_COUNT))

#: what a region watches most: the last-resort answer when personalisation cannot answer at all
POPULAR: dict[str, tuple[str, ...]] = {
    "us-east": ("t003", "t017", "t008", "t030", "t011", "t042", "t025", "t001", "t036", "t014"),
    "eu-west": ("t021", "t005", "t040", "t017", "t009", "t033", "t002", "t027", "t046", "t012"),
}


def popular(region: str) -> list[str]:
    """The region's popular row (falls back to the first titles for a region nobody ranked)."""
    return list(POPULAR.get(region, TITLES[:10]))


@dataclass(frozen=True, slots=True)
class Member:
    """A viewer: a member id, their device, home region and plan."""

    user_id: str
    device_id: str
    device_type: str
    region: str
    plan: str


def member(index: int, regions: tuple[str, ...] = ("us-east", "eu-west")) -> Member:
    """Member number `index`: stable for a given index."""
    uid = f"u{index:05d}"
    h = _digest("member", uid)
    dtype = DEVICE_TYPES[h % len(DEVICE_TYPES)]
    return Member(uid, f"d-{uid}-{dtype}", dtype, regions[(h >> 8) % len(regions)], PLANS[(h >> 16) % 3])


def device_known(device_id: str) -> bool:
    """Every member's own device is registered; a device id that does not parse is not."""
    parts = device_id.split("-")
    return len(parts) == 3 and parts[0] == "d" and parts[2] in DEVICE_TYPES and parts[1].startswith("u")


def plan_of(user_id: str) -> str:
    """The member's plan."""
    return PLANS[(_digest("member", user_id) >> 16) % 3]


def recommendations(user_id: str, region: str, count: int = 10) -> list[str]:
    """The personalised row for a member: a stable ranking of the catalogue."""
    ranked = sorted(TITLES, key=lambda t: _digest("taste", user_id, t) ^ (_digest("region", region, t) >> 3))
    return ranked[:count]
