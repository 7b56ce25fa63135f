"""The rep directory's dated assignments and the records' storage form."""

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from salespulse.domain.directory import (
    CUSTOMERS,
    PRODUCTS,
    REPS,
    UNASSIGNED,
    Assignment,
    CustomerRecord,
    Directory,
    ProductRecord,
    RepRecord,
)

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def test_an_event_counts_for_the_team_of_its_own_time():
    rep = RepRecord("r", (Assignment("a", "north"),)).assign("b", "north", T0).assign("c", "south", T0 + timedelta(days=30))
    assert [rep.at(T0 - timedelta(days=1)).team, rep.at(T0).team, rep.at(T0 + timedelta(days=29)).team,
            rep.at(T0 + timedelta(days=30)).team] == ["a", "b", "b", "c"]


def test_before_the_first_dated_assignment_the_first_one_applies():
    rep = RepRecord("r", ()).assign("a", "north", T0)
    assert rep.at(T0 - timedelta(days=365)).team == "a"


def test_an_earlier_move_replaces_the_moves_planned_after_it():
    rep = RepRecord("r", (Assignment("a", "n"),)).assign("b", "n", T0 + timedelta(days=10)).assign("c", "n", T0)
    assert [a.team for a in rep.assignments] == ["a", "c"]
    assert RepRecord("r", (Assignment("a", "n"),)).assign("z", "s", None).assignments == (Assignment("z", "s"),)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 100)), min_size=1, max_size=8), st.integers(-10, 110))
def test_assignments_survive_their_storage_form_and_any_order(moves, day):
    rep = RepRecord("r", (Assignment("x", "n"),), "Ann", "201")
    for team, offset in moves:
        rep = rep.assign(team, "n", T0 + timedelta(days=offset))
    shuffled = RepRecord.from_doc({**rep.to_doc(), "assignments": list(reversed(rep.to_doc()["assignments"]))})
    moment = T0 + timedelta(days=day, hours=12)
    assert RepRecord.from_doc(rep.to_doc()) == rep
    assert shuffled.at(moment) == rep.at(moment)


def test_the_directory_resolves_and_forgets():
    directory = Directory()
    directory.put(REPS, "r", RepRecord("r", (Assignment("a", "north"),)).to_doc())
    directory.put(PRODUCTS, "p", ProductRecord("p", "software").to_doc())
    directory.put(CUSTOMERS, "c", CustomerRecord("c", "retail", "west").to_doc())
    assert (directory.team_region("r", T0), directory.category("p"), directory.sector("c")) == (("a", "north"), "software", "retail")
    directory.put(PRODUCTS, "p", None)
    assert (directory.category("p"), directory.sector("x"), directory.team_region("x", T0)) == (UNASSIGNED, UNASSIGNED, (UNASSIGNED, UNASSIGNED))
