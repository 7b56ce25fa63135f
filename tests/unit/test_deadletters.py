"""Dead letters: parsed from records, chosen, counted and planned for a resend (pure parts)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.deadletters.__main__ import main, when
from salespulse.deadletters.letters import NOT_FROM_A_TOPIC, DeadLetter, Selection, plan_resend, summarize

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)


def letter(offset: int = 0, source: str = "sales.orders", reason: str = "no exchange rate from JPY to EUR",
           value: bytes = b'{"id": "e1"}', key: bytes | None = b"ord-1", minutes: int = 0, partition: int = 0) -> DeadLetter:
    return DeadLetter(partition, offset, T0 + timedelta(minutes=minutes), source, reason, key, value)


def test_a_processor_letter_is_read_from_its_headers():
    parsed = DeadLetter.from_record(3, 41, int(T0.timestamp() * 1000), b"ord-1", b'{"id": "e1"}', [
        ("salespulse.reason", "montant refusé".encode()), ("salespulse.source.topic", b"sales.orders"),
        ("salespulse.source.partition", b"5"), ("salespulse.source.offset", b"1200")])
    assert parsed == DeadLetter(3, 41, T0, "sales.orders", "montant refusé", b"ord-1", b'{"id": "e1"}', 5, 1200)
    assert parsed.why_not_resendable is None
    assert parsed.to_doc() == {"partition": 3, "offset": 41, "written_at": "2026-12-07T10:00:00+00:00",
                               "source": "sales.orders", "source_partition": 5, "source_offset": 1200,
                               "reason": "montant refusé", "key": "ord-1", "event": {"id": "e1"}}


def test_a_letter_without_headers_or_json_is_still_shown_and_never_resent():
    parsed = DeadLetter.from_record(0, 1, 0, None, b"\xff not json", [("salespulse.source.offset", b"x")])
    assert (parsed.source, parsed.reason, parsed.source_offset) == ("unknown", "no reason given", None)
    assert parsed.to_doc()["event"] == "\ufffd not json" and parsed.to_doc()["key"] is None
    assert parsed.why_not_resendable == "unknown is not a topic SalesPulse reads events from"
    assert letter(source="webhooks/hubspot").why_not_resendable == NOT_FROM_A_TOPIC


def test_a_selection_takes_what_all_its_choices_allow():
    everything = Selection()
    assert everything.everything and everything(letter())
    assert Selection(reason="jpy")(letter()) and not Selection(reason="USD")(letter())
    assert not Selection(frozenset({"sales.deals"}))(letter())
    assert Selection(frozenset({"sales.deals", "sales.orders"}))(letter())
    window = Selection(since=T0, until=T0 + timedelta(minutes=5))
    assert [window(letter(minutes=m)) for m in (-1, 0, 4, 5)] == [False, True, True, False]
    assert not Selection(frozenset({"sales.orders"}), reason="usd")(letter())


@given(st.lists(st.tuples(st.sampled_from(["sales.orders", "sales.calls", "webhooks/twilio"]),
                          st.sampled_from(["a", "b", "c"]), st.integers(0, 1000)), max_size=60))
def test_a_summary_counts_every_letter_once_in_its_group(rows):
    letters = [letter(i, source, reason, minutes=m) for i, (source, reason, m) in enumerate(rows)]
    groups = summarize(letters)
    assert sum(g.count for g in groups) == len(letters)
    assert len({(g.source, g.reason) for g in groups}) == len(groups)
    assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
    for g in groups:
        mine = [x.written_at for x in letters if (x.source, x.reason) == (g.source, g.reason)]
        assert (g.count, g.first, g.last) == (len(mine), min(mine), max(mine))


def test_a_resend_sends_each_event_once_in_order_and_leaves_webhook_letters():
    first, copy = letter(0, value=b"A"), letter(5, value=b"A", reason="still no rate")
    other_key = letter(1, value=b"A", key=b"ord-2")
    second, webhook = letter(2, value=b"B"), letter(3, source="webhooks/hubspot", value=b"A")
    plan = plan_resend([first, other_key, second, webhook, copy])
    assert plan.send == [first, other_key, second]
    assert plan.copies == 1
    assert plan.skipped == [(webhook, NOT_FROM_A_TOPIC)]


def test_times_without_an_offset_are_utc_and_nonsense_is_refused():
    assert when("2026-12-07T10:00") == T0
    assert when("2026-12-07T11:00:00+01:00") == T0
    with pytest.raises(Exception, match="not an ISO 8601 time"):
        when("yesterday")


@pytest.mark.parametrize("argv, message", [
    (["resend"], "--all for every letter"),
    (["resend", "--dry-run"], "--all for every letter"),
    (["show", "--limit", "-1"], "--limit must be 0 or more"),
    (["purge"], "invalid choice"),
    (["--since", "yesterday"], "not an ISO 8601 time"),
])
def test_the_command_refuses_what_it_cannot_do_before_reading_anything(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
