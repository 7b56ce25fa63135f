"""Alert rules on KPI values: three levels, direction-aware, with hysteresis and a minimum duration.

A rule watches one KPI by one dimension (one value, or every value: `*`) over the current
bucket of one period kind, and one measure of it: the value itself, its attainment (value /
target) or its pace ratio (value / where it should be by now: below 1 means the target will be
missed at this rate, the *anticipation* signal). Levels, least severe first (KPIS.md):
*balance* (informative), *anticipation* (the target will be missed), *alert* (act now).

Each level the rule names has an `enter` and an `exit` threshold on the bad side of the KPI's
direction: for an up-is-good KPI a level is entered when the measure falls to `enter` or below
and left only once it rises above `exit` (exit >= enter); mirrored for down-is-good KPIs. A
series (rule x dimension value) reaches a more severe level only after the measure has stayed
on the bad side for `for_seconds`; it steps down as soon as an exit is crossed. So a value
hovering at a threshold does not flap.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

LEVELS = ("balance", "anticipation", "alert")  # least severe first
MEASURES = ("value", "attainment", "pace")
ANY_KEY = "*"


@dataclass(frozen=True)
class Threshold:
    enter: Decimal
    exit: Decimal


@dataclass(frozen=True)
class Rule:
    id: str
    kpi: str
    by: str
    key: str  # a dimension value or * for each
    period: str  # day|week|month|quarter|year|now: the current bucket of that kind
    direction: str  # the KPI's: up (higher is better) or down
    thresholds: dict[str, Threshold] = field(default_factory=dict)  # level -> thresholds
    measure: str = "value"
    for_seconds: float = 0.0

    def __post_init__(self) -> None:
        problems = rule_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def bad(self, x: Decimal, threshold: Decimal) -> bool:
        """Whether x is at or past `threshold` on the bad side."""
        return x <= threshold if self.direction == "up" else x >= threshold

    def series(self, key: str) -> str:
        return f"{self.id}/{self.by}/{key}/{self.period}"


def rule_problems(rule: Rule) -> list[str]:
    """What makes a rule inconsistent, in words a user can act on."""
    out = []
    if rule.direction not in ("up", "down"):
        out.append(f"direction must be up or down, not {rule.direction!r}")
        return out
    if rule.measure not in MEASURES:
        out.append(f"measure must be one of {', '.join(MEASURES)}, not {rule.measure!r}")
    unknown = set(rule.thresholds) - set(LEVELS)
    if unknown:
        out.append(f"unknown levels {sorted(unknown)}; levels are {', '.join(LEVELS)}")
    if not rule.thresholds:
        out.append("a rule needs thresholds for at least one level")
    if rule.for_seconds < 0:
        out.append("for_seconds must not be negative")
    worse = "below" if rule.direction == "up" else "above"
    for level, t in rule.thresholds.items():
        if t.exit != t.enter and rule.bad(t.exit, t.enter):
            out.append(f"{level}: exit {t.exit} must not be {worse} enter {t.enter} ({rule.kpi} is "
                       f"{'higher' if rule.direction == 'up' else 'lower'}-is-better)")
    named = [level for level in LEVELS if level in rule.thresholds]
    for milder, harsher in zip(named, named[1:]):
        a, b = rule.thresholds[milder].enter, rule.thresholds[harsher].enter
        if a != b and rule.bad(a, b):
            out.append(f"{harsher} must be entered further on the bad side than {milder}: "
                       f"{harsher} enter {b} vs {milder} enter {a}")
    return out


@dataclass(frozen=True)
class SeriesState:
    """Where one series stands: its level (None: no alert) and what is building up."""

    level: str | None = None
    raised_at: datetime | None = None  # when the current alert was raised
    pending_since: datetime | None = None  # since when a more severe level has been wanted


@dataclass(frozen=True)
class Change:
    """A lifecycle step of one alert: raised, level_changed or resolved."""

    state: str
    level: str | None  # the new level (None when resolved)
    previous: str | None
    threshold: Decimal | None  # the threshold crossed: enter when rising, exit when stepping down


def severity(level: str | None) -> int:
    return -1 if level is None else LEVELS.index(level)


def wanted_level(rule: Rule, x: Decimal, current: str | None) -> str | None:
    """The most severe level the measure calls for, with hysteresis: a level at or below the
    current one is kept until its exit is crossed; a harsher one needs its enter."""
    for level in reversed(LEVELS):
        t = rule.thresholds.get(level)
        if t is None:
            continue
        kept = severity(level) <= severity(current) and rule.bad(x, t.exit)
        if rule.bad(x, t.enter) or kept:
            return level
    return None


def step(rule: Rule, state: SeriesState, x: Decimal | None, now: datetime) -> tuple[SeriesState, Change | None]:
    """The series' next state for an observation (None: no value, nothing changes)."""
    if x is None:
        return state, None
    wanted = wanted_level(rule, x, state.level)
    if severity(wanted) > severity(state.level):
        since = state.pending_since or now
        if now - since < timedelta(seconds=rule.for_seconds):
            return replace(state, pending_since=since), None
        return _moved(rule, state, wanted, now)
    if wanted == state.level:
        return replace(state, pending_since=None), None
    return _moved(rule, state, wanted, now)


def _moved(rule: Rule, state: SeriesState, level: str | None, now: datetime) -> tuple[SeriesState, Change]:
    if state.level is None:
        return SeriesState(level, now), Change("raised", level, None, rule.thresholds[level].enter)
    if level is None:
        return SeriesState(), Change("resolved", None, state.level, rule.thresholds[state.level].exit)
    rising = severity(level) > severity(state.level)
    threshold = rule.thresholds[level].enter if rising else rule.thresholds[state.level].exit
    return SeriesState(level, state.raised_at), Change("level_changed", level, state.level, threshold)


def measure_of(rule: Rule, value: dict) -> Decimal | None:
    """The rule's measure from a KPI value as the API serves it (`value`, `attainment`, `pace`)."""
    if rule.measure == "value":
        x = value.get("value")
    elif rule.measure == "attainment":
        x = value.get("attainment")
    else:
        v, pace = value.get("value"), value.get("pace")
        x = None if v is None or not pace else Decimal(str(v)) / Decimal(str(pace))
    return None if x is None else Decimal(str(x))


def rule_from_doc(rule_id: str, doc: Any, direction: str) -> Rule:
    """A rule from its stored document (as PUT /rules takes it); ValueError says what is wrong.
    kpi.rules may be written by anything, not only the API: any JSON value is told apart."""
    if not isinstance(doc, dict):
        raise ValueError("a rule is a JSON object")
    levels = doc.get("levels") or {}
    if not isinstance(levels, dict):
        raise ValueError("levels is an object: level -> {enter, exit}")
    thresholds = {}
    for level, t in levels.items():
        if not isinstance(t, dict):
            raise ValueError(f"levels.{level} is an object with enter and exit")
        enter = _number(t.get("enter"), f"levels.{level}.enter")
        thresholds[level] = Threshold(enter, enter if t.get("exit") is None else _number(t["exit"], f"levels.{level}.exit"))
    texts = {name: doc.get(name, default) for name, default in
             (("kpi", None), ("by", "all"), ("key", "all"), ("period", "day"), ("measure", "value"))}
    for name, value in texts.items():
        if not isinstance(value, str):
            raise ValueError(f"{name} is a text, not {value!r:.60}")
    for_seconds = _number(doc.get("for_seconds", 0), "for_seconds")
    return Rule(rule_id, texts["kpi"], texts["by"], texts["key"], texts["period"], direction, thresholds,
                texts["measure"], float(for_seconds))


def _number(value: Any, name: str) -> Decimal:
    """A JSON number, as PUT /rules takes it (not a text, not true)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is a number, not {value!r:.60}")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"{name} is a finite number, not {value!r:.60}")
    return number


ALERT_STATES = ("raised", "level_changed", "resolved")
_ALERT_TEXTS = ("id", "alert_id", "series", "rule", "kpi", "by", "key", "period", "measure", "unit")
_ALERT_NUMBERS = ("measured", "value", "threshold")  # or null
_ALERT_MOMENTS = ("at", "raised_at")


def alert_event_problem(doc: Any) -> str | None:
    """What keeps `doc` from being an alert change as the alerting service records it on
    kpi.alerts (evaluator.alert_event), in words for a log; None if it is one. That topic is
    open like the others: whatever else lands there must not stop the service restoring its
    state from it, nor a receiver's deliveries, nor reach GET /alerts."""
    if not isinstance(doc, dict):
        return "an alert change is a JSON object"
    for name in _ALERT_TEXTS:
        if not isinstance(doc.get(name), str):
            return f"{name} is a text, not {doc.get(name)!r:.60}"
    if not isinstance(doc.get("period_start"), (str, type(None))):
        return f"period_start is a text or null, not {doc['period_start']!r:.60}"
    for name in _ALERT_NUMBERS:
        value = doc.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{name} is a number or null, not {value!r:.60}"
    for name in _ALERT_MOMENTS:
        value = doc.get(name)
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            return f"{name} is an ISO 8601 time with its offset, not {value!r:.60}"
    state, level, previous = doc.get("state"), doc.get("level"), doc.get("previous_level")
    if state not in ALERT_STATES:
        return f"state is one of {', '.join(ALERT_STATES)}, not {state!r:.60}"
    if previous is not None and previous not in LEVELS:
        return f"previous_level is one of {', '.join(LEVELS)} or null, not {previous!r:.60}"
    if state == "resolved":
        if level is not None:
            return f"a resolved alert has no level, not {level!r:.60}"
    elif level not in LEVELS:
        return f"a {state} alert's level is one of {', '.join(LEVELS)}, not {level!r:.60}"
    elif doc.get("threshold") is None:
        return f"a {state} alert names the threshold it crossed"
    return None
