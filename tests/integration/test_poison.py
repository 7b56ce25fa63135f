"""An event the processor's code raises on, on the real broker and Redis: that event is
dead-lettered with the error, every other event of its batch counts, and the worker goes on.

No such event is known (hypothesis finds none), so bugs are put in: the decoder raises for one
call, the call transition for another, the call contributions for one rep's calls. The worker runs in this process to
carry it; everything else is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timezone

from prometheus_client import REGISTRY

from salespulse.domain import entities, states
from salespulse.processor import app
from salespulse.processor.app import Worker
from tests.integration.conftest import consume, eventually, in_process_api, unique
from tests.integration.test_rebalance import counted, ended_calls, send_all


def failed_here(topic: str) -> float:
    return REGISTRY.get_sample_value("salespulse_processor_failed_events_total", {"topic": topic}) or 0.0


async def test_an_event_the_code_raises_on_is_dead_lettered_and_the_rest_of_its_batch_counts(own, monkeypatch, caplog):
    settings = own.settings
    day, rep, unlucky = datetime.now(timezone.utc).date().isoformat(), unique("rep"), unique("rep")
    calls = ended_calls(rep, 60, day)
    poison_key, undecodable_key = calls[17][0], calls[40][0]
    [(unlucky_key, unlucky_call)] = ended_calls(unlucky, 1, day)
    call = states.KINDS["call"]

    def transition(state, event_id, data, converter):
        if data.call_id == poison_key:
            return 1 // 0
        return call.transition(state, event_id, data, converter)

    def contributions(state):
        if state is not None and state.rep_id == unlucky:
            raise KeyError("no such measure")
        return entities.call_contributions(state)

    decode = app.decode_event

    def decode_event(value: bytes):
        if undecodable_key.encode() in value:
            raise RuntimeError("the decoder's bug")
        return decode(value)

    monkeypatch.setattr(app, "decode_event", decode_event)
    monkeypatch.setitem(states.KINDS, "call", dataclasses.replace(call, transition=transition,
                                                                  contributions=contributions))
    failed_before = failed_here("sales.calls")
    worker = Worker(settings)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(worker.ready.wait(), 60)
        async with in_process_api(settings) as api:
            await send_all(settings.kafka_bootstrap_servers, [*calls[:30], (unlucky_key, unlucky_call), *calls[30:]])
            await eventually(lambda: counted(api, rep, day, 58), timeout=60)
            assert not running.done()

            letters = await consume(settings.kafka_bootstrap_servers, "sales.deadletter",
                                    lambda r: r.key.decode() in (poison_key, undecodable_key, unlucky_key), count=3)
            reasons = {r.key.decode(): dict(r.headers)["salespulse.reason"].decode() for r in letters}
            assert reasons[poison_key].startswith("could not be aggregated: ZeroDivisionError: ")
            assert reasons[unlucky_key].startswith("could not be aggregated: KeyError: 'no such measure'")
            assert reasons[undecodable_key].startswith("could not be decoded: RuntimeError: the decoder's bug")
            assert failed_here("sales.calls") - failed_before == 3
            # Each logged once, with its traceback (before: the traceback, then the dead letter's line).
            logged = [r for r in caplog.records if "dead-lettered" in r.getMessage()]
            assert [(r.levelname, r.exc_info is not None) for r in logged] == [("ERROR", True)] * 3

            await send_all(settings.kafka_bootstrap_servers, ended_calls(rep, 70, day)[60:])
            await eventually(lambda: counted(api, rep, day, 68), timeout=60)
            response = await api.get("/api/v1/kpis/calls_inbound", params={"by": "rep", "period": "day", "at": day})
            assert unlucky not in {v["key"] for v in response.json()["values"]}
    finally:
        worker.stop()
        await asyncio.wait_for(running, 60)
