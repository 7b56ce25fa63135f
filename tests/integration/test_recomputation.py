"""Thousands of messy events through the real pipeline match an independent batch computation.

The log (messy.py) spans four months of 2023, a year no other test uses, with a dozen reps and
every event type, disorder, redelivery and time-zone trap the processor must handle. Every KPI,
by every dimension, in the buckets the test reads back, must match exactly: the customer
lifecycle, close rate, receivables and the target-bound ones (attainment, deals needed to
target) too.
"""

from __future__ import annotations

import random

import orjson
import pytest

from tests.integration.conftest import caught_up, eventually, unique
from tests.integration.messy import compare, generate, put_directory, put_targets, reference

pytestmark = pytest.mark.usefixtures("processor")


async def test_the_live_kpis_match_an_independent_recomputation(api, producer, settings):
    rng = random.Random(20230101)
    tag = unique("rc")
    directory = reference(tag)
    await put_directory(api, directory)
    targets = await put_targets(api, rng, tag)
    log = generate(rng, tag)
    assert len(log) > 3000
    for topic, key, event in log:
        await producer.send(topic, orjson.dumps(event), key=key.encode())
    await producer.flush()
    await eventually(lambda: caught_up(settings.kafka_bootstrap_servers, settings.processor_app_id),
                     timeout=180, interval=1)

    compared, differences = await compare(api, log, directory, targets, tag, rng)
    assert compared > 10_000
    assert differences == [], f"{len(differences)} of {compared} values differ, e.g. {differences[:5]}"
