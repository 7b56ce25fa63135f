"""schemathesis against the OpenAPI document: no request, however odd, gets a server error, and
every answer matches what the document promises (status codes, content types, bodies).

The API runs as in production (a key required, with every scope given to the fuzzer), as its own process on servers of this module's own (a Kafka broker and a
redis-server), so the targets, rules and directory records the fuzzer writes reach no other
test. The SSE stream is left out: it never ends, by design.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from salespulse.contracts.topics import ensure_topics
from tests.integration.conftest import start_api, unavailable
from tests.integration.test_faults import OwnServers

KEY = "fuzz-key-0123456789abcdef"  # every scope: the fuzzer reaches every operation

@pytest.fixture(scope="module")
def api_url(tmp_path_factory) -> Iterator[str]:
    servers = OwnServers(tmp_path_factory.mktemp("openapi"))
    try:
        servers.kafka.start()
        servers.redis.start()
    except Exception as exc:  # noqa: BLE001
        servers.kafka.stop()
        unavailable(f"could not start a local Kafka and Redis of the test's own: {exc}")
    servers.settings.data_dir.mkdir()
    asyncio.run(ensure_topics(servers.settings))
    proc, url = start_api(servers.settings, servers.settings.data_dir / "api.log", SALESPULSE_ENV="production",
                          API_KEYS=json.dumps({"fuzz": {"key": KEY, "scopes": ["read", "write", "ingest"]}}))
    yield url
    proc.terminate()
    proc.wait(30)
    servers.redis.stop()
    servers.kafka.stop()


@pytest.fixture(scope="module")
def api_schema(api_url):
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json").exclude(path_regex=r"/stream$")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented_and_never_with_a_server_error(case):
    # The key is sent with every case, so schemathesis's own "invalid auth" probe cannot apply:
    # test_access.py covers 401 and 403. Rules across fields (a profile's `by` and `key` go
    # together) are refused with a 422 the schema cannot express: every other check stays on.
    case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=[ignored_auth, positive_data_acceptance])
