"""Targets per KPI, dimension value and period, and which one applies to a value.

A target is set for one bucket (`2026-11`) or for every bucket of a kind (`month`), for one
dimension value (`rep-7`) or for every value of the dimension (`*`). The most specific wins:
bucket+value, kind+value, bucket+*, kind+*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from urllib.parse import quote, unquote

from salespulse.domain.kpis import Target
from salespulse.domain.periods import period_label

ANY_KEY = "*"


@dataclass(frozen=True)
class TargetId:
    kpi: str
    by: str
    key: str  # a dimension value, or * for every value
    period: str  # a kind (month) or one bucket's label (2026-11)

    def encode(self) -> str:
        """The kpi.targets record key: kpi/by/key/period, each part percent-encoded."""
        return "/".join(quote(part, safe="") for part in (self.kpi, self.by, self.key, self.period))

    @classmethod
    def decode(cls, text: str) -> "TargetId":
        parts = text.split("/")
        if len(parts) != 4:
            raise ValueError(f"target id {text!r} is not kpi/by/key/period")
        return cls(*(unquote(p) for p in parts))


def target_from_doc(doc: Mapping) -> Target:
    alert_at = doc.get("alert_at")
    return Target(Decimal(str(doc["target"])), None if alert_at is None else Decimal(str(alert_at)))


class TargetBook:
    """Looks up the target that applies to one KPI value."""

    def __init__(self, docs: Mapping[TargetId, Mapping]) -> None:
        self._targets = {tid: target_from_doc(doc) for tid, doc in docs.items()}

    def __len__(self) -> int:
        return len(self._targets)

    def find(self, kpi: str, by: str, key: str, period: str, start: date | None) -> Target | None:
        if not self._targets:
            return None
        label = period_label(period, start) if start is not None and period != "now" else None
        for k in (key, ANY_KEY):
            for p in ((label, period) if label else (period,)):
                target = self._targets.get(TargetId(kpi, by, k, p))
                if target is not None:
                    return target
        return None
