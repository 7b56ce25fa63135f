"""What SalesPulse writes to Kafka is compressed as KAFKA_COMPRESSION says (not by default).

Read off the broker's own disk with Kafka's DumpLogSegments, so it is the codec of the record
batches as stored: the events the API ingested, the processor's changelog and its kpi.updates.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from salespulse.contracts.topics import KPI_UPDATES, state_changelog
from salespulse.devstack import LocalKafka, ensure_kafka_jars
from tests.integration.conftest import an_ingested_order_is_counted


def codecs(kafka: LocalKafka, topic: str) -> set[str]:
    """The compression codec of every record batch of `topic` on the broker's disk."""
    found: set[str] = set()
    segments = sorted((kafka.home / "data").glob(f"{topic}-*/*.log"))
    assert segments, f"no log segment of {topic}"
    for segment in segments:
        dump = subprocess.run([shutil.which("java"), "-cp", f"{ensure_kafka_jars()}/*", "kafka.tools.DumpLogSegments",
                               "--files", str(segment)], capture_output=True, text=True, timeout=120, check=True)
        found.update(codec.lower() for codec in re.findall(r"compresscodec: (\w+)", dump.stdout))
    return found


async def test_the_api_and_the_processor_write_lz4_batches(own):
    settings = own.settings
    await an_ingested_order_is_counted(settings, {"KAFKA_COMPRESSION": "lz4"})
    assert codecs(own.kafka, "sales.orders") == {"lz4"}
    assert codecs(own.kafka, state_changelog(settings.processor_app_id)) == {"lz4"}
    assert codecs(own.kafka, KPI_UPDATES) == {"lz4"}


async def test_by_default_they_are_not_compressed(own):
    settings = own.settings
    await an_ingested_order_is_counted(settings, {})
    assert codecs(own.kafka, "sales.orders") == {"none"}
    assert codecs(own.kafka, state_changelog(settings.processor_app_id)) == {"none"}
