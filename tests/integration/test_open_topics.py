"""kpi.targets, kpi.rules and wallboard.profiles are open topics (anything may produce there,
not only the API): a record the API could not serve is left out of Redis, on the real broker
and Redis, and everything else is copied and served (a rule as the alerting service evaluates
it: direction from the catalog, whatever the record says).

Before, a record that was not JSON stopped the copy at its first bad record (the API never
became ready), and a JSON document of the wrong shape reached Redis, where it failed every
request that read it (a target with a text for its value: every KPI reading, 500).
"""

from __future__ import annotations

import orjson
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from salespulse.contracts.topics import KPI_RULES, KPI_TARGETS, WALLBOARD_PROFILES
from tests.integration.conftest import in_process_api

GOOD_TARGET = {"target": 5000.0, "alert_at": None, "updated_at": "2026-12-07T10:00:00+00:00"}
GOOD_RULE = {"kpi": "win_rate", "by": "team", "key": "*", "period": "month", "measure": "value",
             "levels": {"alert": {"enter": 0.2, "exit": None}}, "for_seconds": 0.0, "direction": "up",
             "updated_at": "2026-12-07T10:00:00+00:00"}
# A rule written by a tool of its own, with what PUT /rules takes and nothing the API adds: before
# 2026-12-07 the alerting service evaluated it and GET /rules left it out (no direction, no
# updated_at), so an alert could fire from a rule nobody could list or delete.
BARE_RULE = {"kpi": "win_rate", "by": "rep", "key": "*", "period": "month", "levels": {"alert": {"enter": 0.1, "exit": 0.15}}}
GOOD_PROFILE = {"boards": ["sales"], "rotate": 30, "by": "all", "key": "all", "period": None, "lang": None,
                "theme": "dark", "updated_at": "2026-12-07T10:00:00+00:00"}


async def test_records_the_api_could_not_serve_are_left_out_and_the_rest_is_served(own):
    settings = own.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, key, value in [
            (KPI_TARGETS, "revenue/rep/r1/month", orjson.dumps(GOOD_TARGET)),
            (KPI_TARGETS, "revenue/rep/r2/month", b"{not json"),
            (KPI_TARGETS, "revenue/rep/r3/month", orjson.dumps({**GOOD_TARGET, "target": "lots"})),
            (KPI_TARGETS, "no-slashes", orjson.dumps(GOOD_TARGET)),
            (KPI_RULES, "good", orjson.dumps(GOOD_RULE)),
            (KPI_RULES, "listed", orjson.dumps([GOOD_RULE])),
            (KPI_RULES, "no-levels", orjson.dumps({**GOOD_RULE, "levels": "alert"})),
            (KPI_RULES, "bare", orjson.dumps(BARE_RULE)),  # as PUT takes it: evaluated, so listed
            (KPI_RULES, "contrary", orjson.dumps({**GOOD_RULE, "direction": "down"})),
            (KPI_RULES, "unknown-kpi", orjson.dumps({**GOOD_RULE, "kpi": "happiness"})),
            (WALLBOARD_PROFILES, "lobby", orjson.dumps(GOOD_PROFILE)),
            (WALLBOARD_PROFILES, "odd", orjson.dumps({**GOOD_PROFILE, "boards": "sales", "rotate": "fast"})),
        ]:
            await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()

    async with in_process_api(settings) as api:  # ready: its copy got through
        targets = (await api.get("/api/v1/targets")).json()
        assert [(t["key"], t["target"]) for t in targets] == [("r1", 5000.0)]
        rules = await api.get("/api/v1/rules")
        assert rules.status_code == 200
        assert sorted((r["id"], r["direction"], r["updated_at"]) for r in rules.json()) == [
            ("bare", "up", None), ("contrary", "up", "2026-12-07T10:00:00Z"), ("good", "up", "2026-12-07T10:00:00Z")]
        assert (await api.get("/api/v1/rules/bare")).json()["levels"] == BARE_RULE["levels"]
        assert (await api.delete("/api/v1/rules/bare")).status_code == 204
        assert (await api.get("/api/v1/rules/bare")).status_code == 404

        # A copy an earlier version made may no longer be a rule (its KPI since taken out of the
        # catalog): left out, not a 500 for every listing.
        store = redis.from_url(settings.redis_url)
        await store.hset("sp:rules", "retired", orjson.dumps({**GOOD_RULE, "kpi": "retired_kpi"}))
        await store.aclose()
        rules = await api.get("/api/v1/rules")
        assert rules.status_code == 200 and "retired" not in [r["id"] for r in rules.json()]
        assert (await api.get("/api/v1/rules/retired")).status_code == 404
        profiles = await api.get("/api/v1/profiles")
        assert profiles.status_code == 200 and [p["name"] for p in profiles.json()] == ["lobby"]
        reading = await api.get("/api/v1/kpis/revenue", params={"by": "rep", "period": "month"})
        assert reading.status_code == 200, reading.text
