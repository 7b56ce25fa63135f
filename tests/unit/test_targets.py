from datetime import date
from decimal import Decimal

from salespulse.domain.targets import TargetBook, TargetId


def test_target_ids_round_trip_with_slashes_in_values():
    tid = TargetId("revenue", "rep", "team/paris", "2026-11")
    assert tid.encode() == "revenue/rep/team%2Fparis/2026-11"
    assert TargetId.decode(tid.encode()) == tid


def test_the_most_specific_target_wins():
    book = TargetBook({
        TargetId("revenue", "rep", "*", "month"): {"target": 1},
        TargetId("revenue", "rep", "*", "2026-11"): {"target": 2},
        TargetId("revenue", "rep", "rep-7", "month"): {"target": 3},
        TargetId("revenue", "rep", "rep-7", "2026-11"): {"target": 4, "alert_at": 0.5},
    })
    nov, dec = date(2026, 11, 1), date(2026, 12, 1)
    assert book.find("revenue", "rep", "rep-7", "month", nov).value == 4
    assert book.find("revenue", "rep", "rep-7", "month", nov).alert_at == Decimal("0.5")
    assert book.find("revenue", "rep", "rep-7", "month", dec).value == 3
    assert book.find("revenue", "rep", "rep-8", "month", nov).value == 2
    assert book.find("revenue", "rep", "rep-8", "month", dec).value == 1
    assert book.find("revenue", "rep", "rep-8", "week", dec) is None
    assert book.find("orders", "rep", "rep-7", "month", nov) is None
