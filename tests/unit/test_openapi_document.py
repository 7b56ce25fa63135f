"""The OpenAPI document as a reference an integrator can work from, without servers: every
operation says what it does, every parameter what it means, which key it needs and which errors
it can answer. (tests/integration/test_openapi_fuzz.py checks the API answers as it says.)"""

from __future__ import annotations

from salespulse.api.app import create_app
from salespulse.api.auth import needed_scope
from salespulse.api.models import ERROR_MEANINGS
from salespulse.settings import Settings

DOCUMENT = create_app(Settings(salespulse_env="development")).openapi()
OPERATIONS = [(method.upper(), path, operation) for path, operations in DOCUMENT["paths"].items()
              for method, operation in operations.items()]


def fastapi_default_summary(operation: dict) -> str:
    """What FastAPI titles an operation it was given no summary for: its function's name."""
    name = operation["operationId"].split("_api_v1_")[0].split("__")[0]
    return name.replace("_", " ").title()


def test_every_operation_says_what_it_does():
    problems = []
    for method, path, operation in OPERATIONS:
        if not operation.get("summary") or operation["summary"] == fastapi_default_summary(operation):
            problems.append(f"{method} {path}: no summary")
        own = operation.get("description", "").split("\n\nNeeds an API key")[0]  # without the scope's note
        if len(own) <= 20:
            problems.append(f"{method} {path}: no description of its own")
        problems += [f"{method} {path}: {parameter['name']} not described"
                     for parameter in operation.get("parameters", []) if not parameter.get("description")]
    assert not problems
    assert len(OPERATIONS) == 34


def test_every_operation_says_which_key_it_needs():
    open_ones = set()
    for method, path, operation in OPERATIONS:
        scope = needed_scope(method, path)
        if scope is None:  # probes, and webhooks with their providers' signatures
            assert operation["security"] == [] and "scope `" not in operation["description"], path
            open_ones.add(f"{method} {path}")
            continue
        assert f"scope `{scope}`" in operation["description"], path
        assert {"401", "403"} <= set(operation["responses"]), path
        schemes = {name for requirement in operation["security"] for name in requirement}
        assert schemes == ({"HTTPBearer", "APIKeyHeader", "WallboardToken"} if scope == "read"
                           else {"HTTPBearer", "APIKeyHeader"}), path  # a wallboard token only reads
    assert open_ones == {"POST /api/v1/webhooks/{provider}", "GET /api/v1/healthz", "GET /api/v1/readyz",
                         "GET /healthz", "GET /readyz"}


def test_every_error_an_operation_lists_is_one_the_api_answers_and_says_what_it_means():
    for method, path, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if status.startswith("2") or path.endswith("/readyz"):
                continue
            assert int(status) in ERROR_MEANINGS, f"{method} {path} lists {status}, which the API never answers"
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"}
            assert response["description"] not in ("Unauthorized", "Forbidden", "Not Found", "Service Unavailable")


def test_only_ingest_is_rate_limited_and_only_what_reads_redis_or_kafka_can_be_unavailable():
    limited = {f"{method} {path}" for method, path, operation in OPERATIONS if "429" in operation["responses"]}
    assert limited == {"POST /api/v1/events"}
    never_unavailable = {f"{method} {path}" for method, path, operation in OPERATIONS
                         if "503" not in operation["responses"]}
    assert never_unavailable == {"GET /api/v1/kpis", "GET /api/v1/stream", "GET /api/v1/healthz", "GET /healthz"}


def test_every_operation_with_a_body_says_a_body_too_large_is_refused():
    assert all("413" in operation["responses"] for _, _, operation in OPERATIONS if "requestBody" in operation)


def test_a_path_with_a_record_in_it_says_what_is_not_found():
    for method, path, operation in OPERATIONS:
        missing = operation["responses"].get("404")
        lookup = "{" in path and method in ("GET", "DELETE") and not path.endswith("/stream")
        if lookup:
            assert missing and "`unknown_" in missing["description"], f"{method} {path}"
