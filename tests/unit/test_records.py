from dataclasses import fields, replace
from datetime import datetime, timezone

import pytest

from salespulse.domain import activities, customers, entities
from salespulse.domain.records import evolve

AT = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)
RECORDS = [
    entities.CallState("r1", "inbound", AT, seen=("e1",)),
    entities.DealState("r1", "proposal", 250_000, 5000, AT, AT, seen=("e2",)),
    entities.OrderState(placed_at=AT, rep_id="r1", customer_id="c1", revenue_cents=4900,
                        products=(entities.ProductLine("crm-seat", 4900, 950),)),
    activities.InvoiceState("c1", issued_at=AT, amount_cents=12000),
    customers.CustomerState(orders=(customers.CustomerOrder("o1", AT, 4900, "r1"),)),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_evolve_gives_what_dataclasses_replace_gives(record):
    names = [f.name for f in fields(record)]
    changes = {names[-1]: None, names[0]: getattr(record, names[0])}
    assert evolve(record) == record and evolve(record) is not record
    evolved = evolve(record, **changes)
    assert evolved == replace(record, **changes)
    assert type(evolved) is type(record)
    assert all(getattr(evolved, n) == getattr(record, n) for n in names if n not in changes)


def test_evolve_refuses_a_name_that_is_not_a_field():
    with pytest.raises(AttributeError):
        evolve(RECORDS[0], no_such_field=1)
