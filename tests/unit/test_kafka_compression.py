"""KAFKA_COMPRESSION as aiokafka producer arguments (tests/integration/test_changelog.py reads the
codec of what the processor and the API wrote off the broker's disk)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from salespulse.settings import Settings


def test_lz4_by_default_none_turns_it_off_and_an_unknown_codec_is_refused():
    assert Settings().producer_options()["compression_type"] == "lz4"
    assert Settings(kafka_compression="zstd").producer_options()["compression_type"] == "zstd"
    assert Settings(kafka_compression="none").producer_options()["compression_type"] is None
    assert "compression_type" not in Settings().kafka_options()  # consumers take no such argument
    with pytest.raises(ValidationError, match="kafka_compression"):
        Settings(kafka_compression="brotli")
