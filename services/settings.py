"""Settings shared by every service, read from environment variables.

Each variable is documented in the README's configuration table; the defaults run the
single-machine stack started by `make run`.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from salespulse.domain.kpis import CATALOG

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"

    business_timezone: str = "Europe/Paris"
    reporting_currency: str = "EUR"
    # Exchange rates into the reporting currency, e.g. {"USD": "0.92"}: 1 USD = 0.92 EUR.
    fx_rates: Annotated[dict[str, Decimal], NoDecode] = Field(default_factory=dict)

    # A customer stays active this many days after its latest order (active/lost customers, churn).
    customer_activity_days: int = Field(default=365, ge=1, le=3660)

    # State retention (domain/retention.py): days a bucket is kept after it ends, by period kind
    # (kinds not named are kept), and days a finished call, deal, activity, survey or spend
    # record is kept (0: forever); an event older than that is dead-lettered, not counted twice.
    bucket_retention_days: Annotated[dict[str, int], NoDecode] = Field(default_factory=lambda: {"day": 400, "week": 800})
    entity_retention_days: int = Field(default=400, ge=0)
    retention_check_seconds: float = Field(default=3600, gt=0)

    topic_partitions: int = Field(default=6, ge=1, le=1024)
    topic_replication_factor: int = Field(default=1, ge=1, le=16)

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    processor_app_id: str = "salespulse-processor"
    processor_metrics_host: str = "127.0.0.1"
    processor_metrics_port: int = 9102
    processor_batch_size: int = Field(default=1000, ge=1)
    processor_batch_seconds: float = Field(default=0.05, gt=0)

    # Alerting (salespulse.alerting): rules are evaluated every ALERT_EVAL_SECONDS; alert changes
    # go to kpi.alerts and to each receiver that has a URL (none: the receiver is off).
    alerting_app_id: str = "salespulse-alerting"
    alerting_metrics_host: str = "127.0.0.1"
    alerting_metrics_port: int = 9103
    alert_eval_seconds: float = Field(default=5.0, gt=0)
    alert_history_size: int = Field(default=10_000, ge=1)
    alert_webhook_url: str | None = None  # generic JSON webhook, signed with ALERT_WEBHOOK_SECRET
    alert_webhook_secret: str | None = None
    slack_webhook_url: str | None = None  # a Slack incoming webhook (or a compatible one)
    alertmanager_url: str | None = None  # e.g. http://127.0.0.1:9093
    alertmanager_resend_seconds: float = Field(default=60.0, gt=0)  # Alertmanager forgets unrepeated alerts
    notify_max_backoff_seconds: float = Field(default=60.0, gt=0)
    wallboard_url: str = "http://127.0.0.1:8000/"  # links in notifications

    # Provider webhooks (POST /api/v1/webhooks/{provider}): a provider is accepted once its
    # secret is set; WEBHOOK_PUBLIC_URL is the base URL providers call when a proxy rewrites it
    # (Twilio and HubSpot sign the URL they called).
    webhook_public_url: str | None = None
    twilio_auth_token: str | None = None
    aircall_webhook_token: str | None = None
    asterisk_webhook_token: str | None = None
    asterisk_timezone: str | None = None  # the PBX's clock for Cdr times; default BUSINESS_TIMEZONE
    hubspot_client_secret: str | None = None
    pipedrive_webhook_user: str | None = None
    pipedrive_webhook_password: str | None = None
    salesforce_webhook_token: str | None = None
    # Provider stage -> SalesPulse stage, by provider, over each provider's defaults,
    # e.g. {"pipedrive": {"7": "proposal"}, "hubspot": {"12345678": "negotiation"}}.
    webhook_stages: Annotated[dict[str, dict[str, str]], NoDecode] = Field(default_factory=dict)
    webhook_currency: str | None = None  # a deal's currency when the CRM names none; default REPORTING_CURRENCY
    webhook_dedupe_seconds: int = Field(default=7 * 86400, ge=60)  # a provider event id is remembered this long

    # AMI connector (python -m salespulse.ami): logs into Asterisk's manager port and forwards
    # call events to the API's /webhooks/asterisk with ASTERISK_WEBHOOK_TOKEN.
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_username: str | None = None
    ami_secret: str | None = None
    ami_api_url: str = "http://127.0.0.1:8000"
    ami_health_file: Path | None = None  # exists while logged into AMI (a container healthcheck)

    # KPI gauges on the API's /metrics: which KPIs, dimensions and periods (the current bucket),
    # and at most METRICS_MAX_SERIES values per KPI, dimension and period (the best ones).
    metrics_kpis: Annotated[list[str], NoDecode] = Field(default_factory=lambda: [
        "revenue", "revenue_attainment", "gross_margin", "orders", "win_rate", "pipeline_value", "deals_won",
        "calls_outbound", "calls_inbound", "calls_missed", "answer_rate", "new_customers", "overdue_receivables"])
    metrics_dimensions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["all", "team", "region", "rep"])
    metrics_periods: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["day", "month"])
    metrics_max_series: int = Field(default=20, ge=1, le=10_000)
    metrics_cache_seconds: float = Field(default=5.0, ge=0)

    data_dir: Path = REPO_ROOT / "var"

    @field_validator("fx_rates", mode="before")
    @classmethod
    def _parse_fx_rates(cls, raw: object) -> object:
        if isinstance(raw, str):
            import json

            raw = json.loads(raw) if raw.strip() else {}
        if isinstance(raw, dict):
            return {str(k).upper(): Decimal(str(v)) for k, v in raw.items()}
        return raw

    @field_validator("bucket_retention_days", "webhook_stages", mode="before")
    @classmethod
    def _json_object(cls, raw: object) -> object:
        if isinstance(raw, str):
            import json

            raw = json.loads(raw) if raw.strip() else {}
        return raw

    @field_validator("webhook_stages")
    @classmethod
    def _known_stages(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from salespulse.domain.directory import PROVIDERS
        from salespulse.webhooks.core import STAGES

        for provider, stages in value.items():
            if provider not in PROVIDERS:
                raise ValueError(f"unknown provider {provider!r}; providers: {', '.join(PROVIDERS)}")
            wrong = {k: v for k, v in stages.items() if v not in STAGES}
            if wrong:
                raise ValueError(f"{provider} stages {wrong} map to no SalesPulse stage ({', '.join(STAGES)})")
        return value

    @field_validator("bucket_retention_days")
    @classmethod
    def _known_periods(cls, value: dict[str, int]) -> dict[str, int]:
        from salespulse.domain.retention import Retention

        Retention(value)  # refuses unknown period kinds
        if any(days < 0 for days in value.values()):
            raise ValueError("retention days must be 0 (keep) or more")
        return value

    @field_validator("metrics_kpis", "metrics_dimensions", "metrics_periods", mode="before")
    @classmethod
    def _comma_list(cls, raw: object) -> object:
        if isinstance(raw, str):
            return [part.strip() for part in raw.split(",") if part.strip()]
        return raw

    @field_validator("metrics_kpis")
    @classmethod
    def _known_kpis(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in CATALOG]
        if unknown:
            raise ValueError(f"unknown KPIs {unknown}; GET /api/v1/kpis lists them")
        return value

    @field_validator("metrics_periods")
    @classmethod
    def _known_metric_periods(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in ("day", "week", "month", "quarter", "year")]
        if unknown:
            raise ValueError(f"unknown periods {unknown}; periods are day, week, month, quarter, year")
        return value

    @field_validator("reporting_currency", "webhook_currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
