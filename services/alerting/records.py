"""The records of kpi.alerts, read back: by the evaluator restoring its state, by each receiver's
delivery. Anything may write to that topic, not only the evaluator."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from salespulse.domain.alerts import alert_event_problem

log = logging.getLogger(__name__)


def alert_of(offset: int, value: bytes | None) -> dict[str, Any] | None:
    """The alert change of a kpi.alerts record, or None (logged) if it is not one: a tombstone,
    not JSON, or not shaped as the evaluator writes them."""
    if value is None:
        log.warning("kpi.alerts record at offset %d is a tombstone, not an alert change: skipped", offset)
        return None
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        log.warning("kpi.alerts record at offset %d is not JSON (%s): skipped", offset, exc)
        return None
    problem = alert_event_problem(doc)
    if problem is not None:
        log.warning("kpi.alerts record at offset %d is not an alert change (%s): skipped", offset, problem)
        return None
    return doc
