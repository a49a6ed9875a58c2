"""A time-based rolling window in buckets: counts per outcome, fallback levels and a latency histogram.

Recording is lock-free: a finished call appends one integer code (outcome, slow flag, latency bin)
to its bucket's log with `list.append`, which is atomic. Readers fold the unread tail of a log into
counters under the owner's lock (with `collections.Counter`, in C) when they need exact figures:
on a failure, a snapshot, a bucket roll, or when a log grows past FOLD_AFTER entries.
"""

from __future__ import annotations

from collections import Counter

from ._events import Outcome

N_COUNTS = len(Outcome)
# Log-linear latency bins (8 per power of two, so <= 12.5 % error), nanoseconds up to ~4.9 hours.
N_BINS = 8 * 42
MAX_LATENCY_NS = 1 << 44  # the last bin starts here
FOLD_AFTER = 1 << 14  # bounds a bucket's unfolded log (memory) between reads
NEVER = 1 << 62  # a time (ns) that never comes


def latency_bin(ns: int) -> int:
    """The histogram bin of a latency in nanoseconds (log-linear; `bin_value` is its inverse)."""
    if ns < 8:
        return ns if ns > 0 else 0
    b = ns.bit_length()
    index = (b - 3) * 8 + ((ns >> (b - 4)) - 8)
    return index if index < N_BINS else N_BINS - 1


def bin_value(index: int) -> float:
    """The middle of a bin, in nanoseconds."""
    if index < 8:
        return float(index)
    b = index // 8 + 3
    width = 1 << (b - 4)
    return ((index % 8 + 8) << (b - 4)) + width / 2


def code(outcome: int, slow: bool, latency_ns: int) -> int:
    """The integer a finished call appends to its bucket's log."""
    return ((outcome << 1) | slow) * N_BINS + latency_bin(latency_ns)


def _bucket_ns(window_s: float, buckets: int) -> int:
    return max(1, int(window_s * 1e9) // buckets)


class RollingWindow:
    """Not thread-safe for readers: the owner holds its lock around fold, roll, reset and snapshot."""

    # The two fields every call reads first (see DependencyState.__slots__).
    __slots__ = ("current_end", "current_log", "attention_at", "bucket_ns", "counts",  # noqa: RUF023
                 "current", "epochs", "fallbacks", "hist", "levels", "logs", "n", "newest_end", "totals")

    def __init__(self, window_s: float, buckets: int, levels: int) -> None:
        self.n = buckets
        self.bucket_ns = _bucket_ns(window_s, buckets)
        self.levels = max(1, levels)
        self.epochs = [-1] * buckets
        self.logs: list[list[int]] = [[] for _ in range(buckets)]
        self.counts = [[0] * N_COUNTS for _ in range(buckets)]
        self.fallbacks = [[0] * self.levels for _ in range(buckets)]
        self.hist = [[0] * N_BINS for _ in range(buckets)]
        self.totals = [0] * N_COUNTS  # running sums over the live buckets, for an O(1) health check
        # The newest bucket, so a plain success appends without computing its bucket: until
        # `newest_end` (ns) its log is `current_log`, at index `current`.
        self.current = 0
        self.newest_end = 0
        self.current_log = self.logs[0]
        # From `attention_at` on, a plain success must also be looked at (a health check is due).
        # The hot path compares one time: `current_end`, the earlier of the two.
        self.attention_at = NEVER
        self.current_end = 0

    def slot(self, now_ns: int) -> int:
        """Index of the bucket for `now_ns`, expiring buckets that fell out of the window."""
        epoch = now_ns // self.bucket_ns
        i = epoch % self.n
        if self.epochs[i] != epoch:
            self.roll(epoch)
        return i

    def fold(self, i: int) -> None:
        """Move bucket i's unread log entries into its counters."""
        log = self.logs[i]
        fresh = log[:]  # atomic copy, then an atomic delete of just that prefix:
        del log[: len(fresh)]  # entries appended in between stay for the next fold
        if not fresh:
            return
        counts, hist, totals = self.counts[i], self.hist[i], self.totals
        for c, k in Counter(fresh).items():
            kind, b = divmod(c, N_BINS)
            outcome = kind >> 1
            counts[outcome] += k
            totals[outcome] += k
            hist[b] += k
            if kind & 1:
                counts[Outcome.SLOW] += k
                totals[Outcome.SLOW] += k

    def fold_all(self) -> None:
        for j in range(self.n):
            if self.epochs[j] >= 0:
                self.fold(j)

    def roll(self, epoch: int) -> None:
        if self.epochs[epoch % self.n] == epoch:
            return  # another thread rolled first
        oldest = epoch - self.n + 1
        totals = self.totals
        for j in range(self.n):
            held = self.epochs[j]
            if held != -1 and (held < oldest or (j == epoch % self.n and held != epoch)):
                self.attention_at = 0  # calls left the window: the rates moved, a verdict is due
                self.fold(j)
                row = self.counts[j]
                for k in range(N_COUNTS):
                    totals[k] -= row[k]
                    row[k] = 0
                self.logs[j] = []
                self.fallbacks[j] = [0] * self.levels
                self.hist[j] = [0] * N_BINS
                self.epochs[j] = -1
        i = epoch % self.n
        self.epochs[i] = epoch
        end = (epoch + 1) * self.bucket_ns
        if end > self.newest_end:
            self.current, self.newest_end, self.current_log = i, end, self.logs[i]
        self.current_end = min(self.newest_end, self.attention_at)

    def attend(self, at_ns: int) -> None:
        """Send plain successes from `at_ns` on (NEVER: none) through the owner's general path."""
        self.attention_at = at_ns
        self.current_end = min(self.newest_end, at_ns)

    def spans(self, window_s: float, buckets: int) -> bool:
        """True if this window already has `buckets` buckets over `window_s` seconds."""
        return self.n == buckets and self.bucket_ns == _bucket_ns(window_s, buckets)

    def relevel(self, levels: int) -> None:
        """A new fallback chain: its levels are other levels, so their counts start again."""
        self.levels = max(1, levels)
        self.fallbacks = [[0] * self.levels for _ in range(self.n)]

    def reset(self) -> None:
        for j in range(self.n):
            self.epochs[j] = -1
            self.logs[j] = []
            self.counts[j] = [0] * N_COUNTS
            self.fallbacks[j] = [0] * self.levels
            self.hist[j] = [0] * N_BINS
        self.totals = [0] * N_COUNTS
        self.newest_end = self.current_end = 0  # the next call rolls to its bucket
        self.attention_at = NEVER

    def snapshot(self, now_ns: int) -> tuple[list[int], list[int], dict[str, float]]:
        """(counts per outcome, counts per fallback level, latency in ms) over the live window."""
        self.slot(now_ns)
        self.fold_all()
        fallbacks = [0] * self.levels
        merged = [0] * N_BINS
        for j in range(self.n):
            if self.epochs[j] < 0:
                continue
            for k, c in enumerate(self.fallbacks[j]):
                fallbacks[k] += c
            for k, c in enumerate(self.hist[j]):
                if c:
                    merged[k] += c
        return list(self.totals), fallbacks, percentiles(merged)


def quantile(windows: RollingWindow, now_ns: int, q: float) -> tuple[float, int]:
    """(the `q` quantile of the live window's latencies in seconds, how many calls it comes from);
    the caller holds the owner's lock."""
    windows.slot(now_ns)
    windows.fold_all()
    merged = [0] * N_BINS
    for j in range(windows.n):
        if windows.epochs[j] >= 0:
            for k, c in enumerate(windows.hist[j]):
                if c:
                    merged[k] += c
    total = sum(merged)
    seen = 0
    for i, c in enumerate(merged):
        seen += c
        if c and seen >= q * total:
            return _bin_start(i + 1) / 1e9, total  # the bin's upper edge: at least that quantile
    return 0.0, total


def _bin_start(index: int) -> int:
    """The lowest latency (ns) in a bin."""
    if index < 8:
        return index
    b = index // 8 + 3
    return (index % 8 + 8) << (b - 4)


def percentiles(hist: list[int]) -> dict[str, float]:
    total = sum(hist)
    out = {"mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0}
    if not total:
        return out
    out["mean"] = sum(c * bin_value(i) for i, c in enumerate(hist) if c) / total / 1e6
    targets = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)]
    seen = 0
    t = 0
    for i, c in enumerate(hist):
        if not c:
            continue
        seen += c
        while t < len(targets) and seen >= targets[t][1] * total:
            out[targets[t][0]] = bin_value(i) / 1e6
            t += 1
        out["max"] = bin_value(i) / 1e6
    return {k: round(x, 4) for k, x in out.items()}
