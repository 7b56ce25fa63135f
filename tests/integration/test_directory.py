"""Reference data through the API: KPIs roll up by team, region, category, sector and channel."""

from __future__ import annotations

import asyncio

import pytest

from salespulse.api.kafka import replay_directory
from salespulse.contracts.topics import ensure_topics
from salespulse.domain.directory import Directory
from salespulse.readmodel import ReadModel
from salespulse.processor.directory import DirectoryFollower
from tests.integration.conftest import cloudevent, send, unique
from tests.integration.test_pipeline import expect
from tests.integration.test_readmodel import own_database

pytestmark = pytest.mark.usefixtures("processor")


def order(order_id: str, rep: str, customer: str, placed_at: str, lines: list[tuple[str, str]], channel: str) -> dict:
    return cloudevent("order.placed", {
        "order_id": order_id, "customer_id": customer, "rep_id": rep, "placed_at": placed_at, "currency": "EUR",
        "channel": channel,
        "lines": [{"product": p, "quantity": 1, "unit_price": price, "unit_cost": "0"} for p, price in lines]})


async def test_a_rep_moving_team_keeps_history_and_new_orders_follow_the_rep(api, producer):
    rep, team_a, team_b, region = unique("rep"), unique("team"), unique("team"), unique("region")
    product, category, customer, sector = unique("prod"), unique("cat"), unique("cust"), unique("sector")
    assert (await api.put(f"/api/v1/directory/reps/{rep}", json={"team": team_a, "region": region,
                                                                   "extension": "201"})).status_code == 200
    assert (await api.put(f"/api/v1/directory/products/{product}", json={"category": category})).status_code == 200
    assert (await api.put(f"/api/v1/directory/customers/{customer}", json={"sector": sector})).status_code == 200
    moved = await api.put(f"/api/v1/directory/reps/{rep}",
                          json={"team": team_b, "region": region, "since": "2024-03-15T00:00:00+01:00"})
    assert [a["team"] for a in moved.json()["assignments"]] == [team_a, team_b]
    assert moved.json()["extension"] == "201"

    # Produced after the directory changes were acknowledged: they must apply.
    for event in [order(unique("o"), rep, customer, "2024-03-14T23:30:00+01:00", [(product, "100.10"), ("other", "5")], "web"),
                  order(unique("o"), rep, customer, "2024-03-15T00:30:00+01:00", [(product, "7")], "shop")]:
        await send(producer, "sales.orders", event["data"]["customer_id"], event)

    await expect(api, team_a, "2024-03-01", {"revenue": 105.10, "orders": 1}, by="team", period="month")
    await expect(api, team_b, "2024-03-01", {"revenue": 7, "orders": 1}, by="team", period="month")
    await expect(api, region, "2024-03-01", {"revenue": 112.10, "orders": 2}, by="region", period="month")
    await expect(api, category, "2024-03-01", {"revenue": 107.10, "orders": 2}, by="category", period="month")
    await expect(api, "unassigned", "2024-03-14", {"revenue": 5}, by="category", period="day")  # no other test uses that day
    await expect(api, sector, "2024-03-01", {"revenue": 112.10, "average_order_value": 56.05}, by="sector", period="month")
    await expect(api, "shop", "2024-03-15", {"orders": 1}, by="channel", period="day")


async def test_deals_roll_up_by_source_product_and_customer(api, producer):
    rep, source, customer, product = unique("rep"), unique("src"), unique("cust"), unique("prod")
    for n, stage in enumerate(["won", "lost", "won"]):
        deal = cloudevent("deal.changed", {
            "deal_id": f"{rep}-{n}", "rep_id": rep, "stage": stage, "amount": 1000 * (n + 1), "currency": "EUR",
            "created_at": "2024-05-01T09:00:00+02:00", "updated_at": "2024-05-02T09:00:00+02:00",
            "source": source, "customer_id": customer, "product": product})
        await send(producer, "sales.deals", f"{rep}-{n}", deal)
    for by, key in (("source", source), ("customer", customer), ("product", product)):
        await expect(api, key, "2024-05-02", {"deals_won": 2, "deals_lost": 1, "average_won_deal_size": 2000},
                     by=by, period="day")


async def test_directory_input_is_checked_and_records_can_be_removed(api):
    rep = unique("rep")
    bad = await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "", "region": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["code"]
    naive = await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "a", "region": "x", "since": "2024-01-01T00:00:00"})
    assert naive.status_code == 422
    missing = await api.get(f"/api/v1/directory/reps/{rep}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_rep"
    assert (await api.put(f"/api/v1/directory/products/{rep}", json={"category": "c"})).status_code == 200
    assert (await api.get(f"/api/v1/directory/products/{rep}")).json() == {"product": rep, "category": "c", "name": None}
    assert (await api.delete(f"/api/v1/directory/products/{rep}")).status_code == 204
    assert (await api.delete(f"/api/v1/directory/products/{rep}")).status_code == 404


async def test_an_invalid_record_on_a_directory_topic_is_ignored_not_fatal(api, producer):
    await send(producer, "directory.reps", "broken", b"{not json")
    await send(producer, "directory.reps", "mismatch", b'{"rep_id": "other", "assignments": [{"team": "t", "region": "r", "since": null}]}')
    rep = unique("rep")
    event = cloudevent("call.started", {"call_id": unique("c"), "rep_id": rep, "direction": "outbound",
                                         "started_at": "2024-07-01T10:00:00+02:00"})
    await send(producer, "sales.calls", event["data"]["call_id"], event)
    await expect(api, rep, "2024-07-01", {"calls_outbound": 1})
    # The processor read both records before that batch (and copied valid ones to Redis first).
    assert (await api.get("/api/v1/directory/reps/mismatch")).status_code == 404


async def test_the_processor_reads_directory_changes_with_no_fetch_left_waiting_between_reads(api, settings):
    """Each batch first reads the directory up to its end; a fetch long-polling the broker in the
    background sat in front of that request (up to 500 ms a batch), so the follower's partitions
    are fetched only while it reads."""
    follower = DirectoryFollower(settings.kafka_bootstrap_servers, Directory())
    try:
        await follower.sync()
        assert follower.consumer.paused() == set(follower.partitions)
        rep = unique("rep")
        assert (await api.put(f"/api/v1/directory/reps/{rep}", json={"team": "t", "region": "r"})).status_code == 200
        assert rep in {key for _, key, _, _ in await follower.sync()}
        assert follower.consumer.paused() == set(follower.partitions)
        assert await follower.sync() == []
    finally:
        await follower.stop()


async def test_the_api_drops_directory_copies_of_a_topic_since_created_again(settings, producer):
    """Redis keeps each directory record's offset and refuses an older one. Records at offsets
    the topic has not reached come from an earlier topic of that name (deleted and created
    again, offsets from 0); the API's copy at start drops them, then copies the topic."""
    await ensure_topics(settings)
    rep = unique("rep")
    await send(producer, "directory.reps", rep, {"rep_id": rep, "assignments": [{"team": "t", "region": "r", "since": None}]})
    readmodel = ReadModel.from_url(own_database(settings.redis_url, 9))
    try:
        await readmodel.redis.flushdb()
        await readmodel.put_record("products", "ghost", {"product": "ghost", "category": "old"}, 10**9)
        await readmodel.put_record("reps", "kept", {"team": "t"}, 0)  # an offset the topic has passed
        await replay_directory(settings.kafka_bootstrap_servers, readmodel)
        assert await readmodel.record("products", "ghost") is None
        assert await readmodel.record("reps", "kept") == {"team": "t"}  # offset 0 < the end: not a ghost
        assert (await readmodel.record("reps", rep))["assignments"][0]["team"] == "t"  # copied
        assert await readmodel.put_record("products", "ghost", {"product": "ghost", "category": "new"}, 1)
    finally:
        await readmodel.close()


async def test_a_rep_produced_straight_to_its_topic_without_its_optional_fields_is_served(api, producer):
    """The schema leaves a rep's name and extension out if need be; GET answered 500 for such a
    record (the response model required them), the list of reps too."""
    rep = unique("rep")
    await send(producer, "directory.reps", rep, {"rep_id": rep, "assignments": [{"team": "t", "region": "r", "since": None}]})
    for _ in range(100):  # copied to Redis by a worker (every batch, or every 2 s)
        got = await api.get(f"/api/v1/directory/reps/{rep}")
        if got.status_code != 404:
            break
        await asyncio.sleep(0.1)
    assert got.status_code == 200 and got.json()["name"] is None and got.json()["extension"] is None
    assert rep in {r["rep_id"] for r in (await api.get("/api/v1/directory/reps")).json()}


async def test_ids_holding_a_slash_can_be_given_a_record_and_a_target(api, producer):
    """Ids may hold `/` (schemas/ allow anything but control characters): a product `kits/AB-12`
    is counted, and its record and targets are addressed with the `/` percent-encoded (before,
    Starlette decoded %2F first, so no route matched: 404)."""
    rep, product = unique("rep"), f"{unique('kits')}/AB-12"
    encoded = product.replace("/", "%2F")
    await send(producer, "sales.deals", f"{rep}-1", cloudevent("deal.changed", {
        "deal_id": f"{rep}-1", "rep_id": rep, "stage": "won", "amount": 1000, "currency": "EUR",
        "created_at": "2024-05-01T09:00:00+02:00", "updated_at": "2024-05-02T09:00:00+02:00", "product": product}))
    await expect(api, product, "2024-05-02", {"deals_won": 1}, by="product", period="day")

    put = await api.put(f"/api/v1/directory/products/{encoded}", json={"category": "kits"})
    assert put.status_code == 200, put.text
    assert (await api.get(f"/api/v1/directory/products/{encoded}")).json()["product"] == product

    target = await api.put(f"/api/v1/targets/deals_won/product/{encoded}/2024-05-02", json={"target": 4})
    assert target.status_code == 200, target.text
    assert (target.json()["key"], target.json()["period"]) == (product, "2024-05-02")
    reading = (await api.get("/api/v1/kpis/deals_won", params={"by": "product", "period": "day",
                                                               "at": "2024-05-02"})).json()
    assert [(v["value"], v["target"], v["attainment"]) for v in reading["values"] if v["key"] == product] == [
        (1, 4, 0.25)]

    assert (await api.delete(f"/api/v1/targets/deals_won/product/{encoded}/2024-05-02")).status_code == 204
    assert (await api.delete(f"/api/v1/directory/products/{encoded}")).status_code == 204
    empty = await api.put("/api/v1/targets/deals_won/product//day", json={"target": 4})
    assert empty.status_code == 422, empty.text
    # The latency histogram names the route as the OpenAPI document does, not `{key:path}`.
    metrics = (await api.get("/metrics")).text
    assert 'route="/api/v1/targets/{kpi}/{by}/{key}/{period}"' in metrics and "{key:id}" not in metrics
    # A line break in an id reaches the route, which refuses it (Starlette's `path` stopped there: 404).
    for path in ("/api/v1/directory/products/a%0Ab", "/api/v1/targets/deals_won/product/a%0Ab/day"):
        refused = await api.put(path, json={"category": "kits", "target": 4})
        assert refused.status_code == 422, (path, refused.text)
