"""Backfill from a file: CSV or JSON lines, one sample per row, of any age within the retention.

CSV has a header row: `at` (epoch seconds), `value`, optionally `indicator`, and one column per
declared label. JSON lines hold one object per line: `{"at": ..., "value": ..., "labels": {...}}`
with an optional `"indicator"`. A row without an indicator belongs to `default_indicator`.
A file ending in `.csv` is read as CSV, anything else as JSON lines. Each row is named
`FILE:LINE` in errors.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from stoic.signals.ingest import IngestError

MAX_ROWS = 10_000_000  # a bound on one file, far above two weeks of a minute for 100 series


@dataclass(frozen=True, slots=True)
class Row:
    """One raw row, not yet checked against the declared indicators."""

    path: str
    indicator: object
    labels: object
    at: object
    value: object


def read(file: Path, default_indicator: str) -> list[Row]:
    """The rows of `file`; IngestError names the file and line of a malformed row."""
    try:
        handle = file.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise IngestError("file", f"file: cannot read {str(file)!r} ({exc.strerror or exc})") from None
    with handle:
        if file.suffix == ".csv":
            return _csv(file, handle, default_indicator)
        return _jsonl(file, handle, default_indicator)


def _number(path: str, key: str, text: str) -> object:
    try:
        return float(text)
    except ValueError:
        raise IngestError(f"{path}.{key}", f"{path}.{key}: must be a number, got {text!r}") from None


def _csv(file: Path, handle: TextIO, default: str) -> list[Row]:
    reader = csv.DictReader(handle)
    fields = reader.fieldnames or []
    for need in ("at", "value"):
        if need not in fields:
            raise IngestError(
                f"{file}:1", f"{file}:1: the header must name columns at and value, got {fields}"
            )
    rows = []
    for n, rec in enumerate(reader, start=2):
        if n > MAX_ROWS:
            raise IngestError(str(file), f"{file}: more than {MAX_ROWS} rows; split the file")
        path = f"{file}:{n}"
        if None in rec:
            raise IngestError(path, f"{path}: more columns than the header names")
        labels = {k: v for k, v in rec.items() if k not in ("at", "value", "indicator") and v}
        rows.append(
            Row(
                path,
                rec.get("indicator") or default,
                labels,
                _number(path, "at", rec["at"] or ""),
                _number(path, "value", rec["value"] or ""),
            )
        )
    return rows


def _jsonl(file: Path, handle: TextIO, default: str) -> list[Row]:
    rows = []
    for n, line in enumerate(handle, start=1):
        if n > MAX_ROWS:
            raise IngestError(str(file), f"{file}: more than {MAX_ROWS} rows; split the file")
        path = f"{file}:{n}"
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise IngestError(path, f"{path}: not a JSON object ({exc})") from None
        if not isinstance(rec, dict):
            raise IngestError(path, f"{path}: must be a JSON object, got {type(rec).__name__}")
        extra = set(rec) - {"indicator", "labels", "at", "value"}
        if extra:
            key = sorted(extra)[0]
            raise IngestError(
                f"{path}.{key}", f"{path}.{key}: unknown field; allowed: at, indicator, labels, value"
            )
        for need in ("at", "value"):
            if need not in rec:
                raise IngestError(f"{path}.{need}", f"{path}.{need}: required")
        rows.append(Row(path, rec.get("indicator", default), rec.get("labels"), rec["at"], rec["value"]))
    return rows
