"""Alert rules: levels, direction, hysteresis and minimum duration."""

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from salespulse.alerting.evaluator import alert_event, rule_of
from salespulse.alerting.notifier import alertmanager_alerts, slack_message, summary
from salespulse.alerting.records import alert_of
from salespulse.api.documents import served_rule
from salespulse.api.models import AlertOut
from salespulse.domain.kpis import CATALOG
from salespulse.domain.alerts import Change, Rule, SeriesState, Threshold, step

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
D = Decimal


def win_rate_rule(**extra) -> Rule:
    """Win rate, higher is better: anticipation under 30 % (back over 33 %), alert under 20 % (25 %)."""
    return Rule("r1", "win_rate", "rep", "*", "month", "up", {
        "anticipation": Threshold(D("0.30"), D("0.33")), "alert": Threshold(D("0.20"), D("0.25"))}, **extra)


def run(rule: Rule, values, start=T0, every=timedelta(seconds=10)):
    state, changes = SeriesState(), []
    for i, x in enumerate(values):
        state, change = step(rule, state, None if x is None else D(str(x)), start + i * every)
        if change:
            changes.append((i, change.state, change.level))
    return state, changes


def test_levels_rise_and_fall_through_their_thresholds():
    _, changes = run(win_rate_rule(), [0.5, 0.3, 0.31, 0.19, 0.22, 0.26, 0.32, 0.34])
    assert changes == [(1, "raised", "anticipation"), (3, "level_changed", "alert"),
                       (5, "level_changed", "anticipation"), (7, "resolved", None)]


def test_a_down_is_good_kpi_alerts_when_high():
    rule = Rule("r2", "calls_missed", "team", "*", "day", "down", {"alert": Threshold(D(10), D(8))})
    _, changes = run(rule, [5, 10, 9, 8, 7])
    assert changes == [(1, "raised", "alert"), (4, "resolved", None)]  # 8 is not below the exit yet


def test_no_value_changes_nothing():
    state, changes = run(win_rate_rule(), [0.1, None, None])
    assert state.level == "alert" and len(changes) == 1


def test_a_level_fires_only_after_its_minimum_duration_and_a_blip_never_does():
    rule = win_rate_rule(for_seconds=30)
    _, blips = run(rule, [0.1, 0.1, 0.5, 0.1, 0.5])  # bad for 10 s at most
    assert blips == []
    _, lasting = run(rule, [0.1, 0.1, 0.1, 0.1, 0.1])
    assert lasting == [(3, "raised", "alert")]  # 30 s after the first bad value


@pytest.mark.parametrize("thresholds, message", [
    ({"alert": Threshold(D("0.2"), D("0.1"))}, "exit 0.1 must not be below enter 0.2"),
    ({"anticipation": Threshold(D("0.1"), D("0.1")), "alert": Threshold(D("0.2"), D("0.2"))},
     "alert must be entered further on the bad side"),
    ({}, "at least one level"),
    ({"panic": Threshold(D(1), D(1))}, "unknown levels"),
])
def test_inconsistent_rules_are_refused_with_a_reason(thresholds, message):
    with pytest.raises(ValueError, match=message):
        Rule("r", "win_rate", "all", "all", "month", "up", thresholds)


values = st.lists(st.decimals(min_value=0, max_value=1, places=2), max_size=60)


@settings(max_examples=300)
@given(values)
def test_hysteresis_a_change_needs_a_crossing_of_the_other_threshold(xs):
    """After a raise, resolving needs a value above exit; after a resolve, raising needs one at enter."""
    rule = Rule("r", "win_rate", "all", "all", "month", "up", {"alert": Threshold(D("0.40"), D("0.50"))})
    _, changes = run(rule, xs)
    for (i, state, _), (j, _, _) in zip(changes, changes[1:]):
        between = xs[i + 1:j + 1]
        if state == "raised":
            assert any(x > D("0.50") for x in between)
        else:
            assert any(x <= D("0.40") for x in between)
    for i, state, _ in changes:
        assert (xs[i] <= D("0.40")) if state == "raised" else (xs[i] > D("0.50"))


@settings(max_examples=200)
@given(values)
def test_a_down_rule_is_the_mirror_of_an_up_rule(xs):
    up = Rule("r", "k", "all", "all", "day", "up", {"anticipation": Threshold(D("0.5"), D("0.6")),
                                                     "alert": Threshold(D("0.3"), D("0.35"))})
    down = Rule("r", "k", "all", "all", "day", "down", {"anticipation": Threshold(D("-0.5"), D("-0.6")),
                                                         "alert": Threshold(D("-0.3"), D("-0.35"))})
    assert run(up, xs)[1] == run(down, [-x for x in xs])[1]


# --- rules as kpi.rules records: anything may write there, not only the API -----------------

VALID_RULE = {"kpi": "win_rate", "by": "team", "key": "*", "period": "month", "measure": "value",
              "levels": {"anticipation": {"enter": 0.3, "exit": 0.35}, "alert": {"enter": 0.2}}, "for_seconds": 60}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["NaN", "Infinity", "1e999999", "0.3", "win_rate", "*", "alert", "value"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["kpi", "by", "key", "period", "measure", "levels", "for_seconds", "alert", "anticipation",
                         "balance", "enter", "exit", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=1000)
@given(st.one_of(JSON_VALUES.map(json.dumps).map(str.encode), st.binary(max_size=40),
                 st.fixed_dictionaries({}, optional={k: JSON_VALUES for k in VALID_RULE}).map(
                     lambda d: json.dumps({**VALID_RULE, **d}).encode())))
def test_a_rules_record_is_a_rule_or_ignored_never_a_crash_of_the_alerting_service(value):
    """A record of kpi.rules that is not a valid rule (not JSON, not an object, thresholds of the
    wrong type: TypeError, decimal.InvalidOperation and AttributeError escaped before) is logged
    and ignored; one that is valid is a rule."""
    rule = rule_of("r1", value)
    assert rule is None or isinstance(rule, Rule)
    try:  # the alerting service evaluates exactly the rules GET /rules lists
        listed = served_rule("r1", orjson.loads(value))
    except ValueError:
        listed = None
    assert (rule is None) == (listed is None)
    if listed is not None:
        assert listed["direction"] == rule.direction == CATALOG[rule.kpi].direction


def test_a_valid_rules_record_is_its_rule():
    rule = rule_of("r1", json.dumps(VALID_RULE).encode())
    assert rule == Rule("r1", "win_rate", "team", "*", "month", "up",
                        {"anticipation": Threshold(Decimal("0.3"), Decimal("0.35")),
                         "alert": Threshold(Decimal("0.2"), Decimal("0.2"))}, "value", 60.0)
    for broken in ({**VALID_RULE, "levels": {"alert": {"enter": "lots"}}}, {**VALID_RULE, "levels": ["alert"]},
                   {**VALID_RULE, "for_seconds": True}, {**VALID_RULE, "kpi": ["win_rate"]}, [VALID_RULE],
                   {**VALID_RULE, "for_seconds": 86_400 * 30}, {**VALID_RULE, "period": "fortnight"}):
        assert rule_of("r1", json.dumps(broken).encode()) is None, broken


def recorded_change(state: str = "raised") -> dict:
    """An alert change as the evaluator writes it to kpi.alerts."""
    rule = win_rate_rule()
    level, previous = {"raised": ("anticipation", None), "level_changed": ("alert", "anticipation"),
                       "resolved": (None, "alert")}[state]
    change = Change(state, level, previous, None if level is None else D("0.3"))
    return json.loads(orjson.dumps(alert_event(rule, "team-a", change, SeriesState(level, T0), T0,
                                               {"period_start": "2026-11-01", "unit": "ratio"},
                                               {"value": 0.25}, D("0.25"), T0 + timedelta(minutes=5))))


ALERT_FIELDS = ["id", "alert_id", "series", "rule", "kpi", "by", "key", "period", "period_start", "state", "level",
                "previous_level", "measure", "measured", "value", "threshold", "unit", "at", "raised_at"]
ALERT_VALUES = JSON_VALUES | st.sampled_from(
    ["raised", "level_changed", "resolved", "alert", "anticipation", "2026-11-23T09:00:00", "2026-11-23T09:00:00+00:00",
     "not a time", 0.3])


@settings(max_examples=1000)
@given(st.one_of(st.sampled_from(["raised", "level_changed", "resolved"]).flatmap(
                     lambda state: st.fixed_dictionaries({}, optional={k: ALERT_VALUES for k in ALERT_FIELDS}).map(
                         lambda d: json.dumps({**recorded_change(state), **d}).encode())),
                 JSON_VALUES.map(json.dumps).map(str.encode), st.binary(max_size=40), st.none()))
def test_a_kpi_alerts_record_is_an_alert_change_every_reader_can_use_or_is_skipped(value):
    """kpi.alerts is open: a record the evaluator did not write (a tombstone, not JSON, a field
    missing or of the wrong type: a KeyError or TypeError in a receiver's message stopped every
    later delivery, and the evaluator could not restore its state and start) is skipped; one
    that is taken, every reader of the topic can use: the restore, each receiver, GET /alerts."""
    event = alert_of(7, value)
    if event is None:
        return
    SeriesState(event["level"], datetime.fromisoformat(event["raised_at"]))
    summary(event)
    slack_message(event, "http://wallboard")
    alertmanager_alerts(event, "http://wallboard")
    AlertOut.model_validate(event)


def test_the_evaluators_changes_are_taken_and_broken_ones_are_not():
    for state in ("raised", "level_changed", "resolved"):
        change = recorded_change(state)
        assert alert_of(1, orjson.dumps(change)) == change
    good = recorded_change()
    for broken in ({**good, "level": None}, {**good, "threshold": None}, {**good, "state": "open"},
                   {**good, "raised_at": "2026-11-23T09:00:00"}, {**good, "by": None}, {**good, "measured": "0.2"},
                   {**recorded_change("resolved"), "level": "alert"}, {**good, "previous_level": "panic"}):
        assert alert_of(1, orjson.dumps(broken)) is None, broken
    assert alert_of(1, None) is None
    assert alert_of(1, b"{") is None
