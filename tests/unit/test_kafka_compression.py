"""KAFKA_COMPRESSION as aiokafka producer arguments (tests/integration/test_compression.py reads the
codec of what the processor and the API wrote off the broker's disk)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salespulse.settings import Settings


def test_off_by_default_a_codec_turns_it_on_and_an_unknown_one_is_refused():
    assert Settings().producer_options()["compression_type"] is None
    assert Settings(kafka_compression="lz4").producer_options()["compression_type"] == "lz4"
    assert Settings(kafka_compression="zstd").producer_options()["compression_type"] == "zstd"
    assert Settings(kafka_compression="none").producer_options()["compression_type"] is None
    assert "compression_type" not in Settings().kafka_options()  # consumers take no such argument
    with pytest.raises(ValidationError, match="kafka_compression"):
        Settings(kafka_compression="brotli")
