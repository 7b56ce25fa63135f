"""Settings shared by every service, read from environment variables.

Each variable is documented in the README's configuration table; the defaults run the
single-machine stack started by `make run`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from salespulse.domain.kpis import CATALOG

REPO_ROOT = Path(__file__).resolve().parent.parent


PLACEHOLDERS = {"", "changeme", "change-me", "change_me", "placeholder", "secret", "password", "token", "xxx",
                "todo", "example", "test", "default", "salespulse"}
MIN_KEY_LENGTH = 16


def _currency_code(value: str, name: str) -> str:
    """An ISO 4217 code, upper-cased: the events' currencies are such codes (schemas/)."""
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"{name}: {value!r} is not a currency code such as EUR or USD")
    return code


def is_placeholder(value: str) -> bool:
    text = value.strip().lower()
    return text in PLACEHOLDERS or text.startswith(("<", "${", "your-", "your_")) or set(text) <= {"x", "*", "."}


class ApiKey(BaseModel):
    key: str = Field(min_length=1)
    scopes: list[Literal["read", "write", "ingest"]] = Field(min_length=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    # `development` (what `make run` and the tests set) may run with no API key and with
    # placeholder secrets; anything else refuses to start until they are real.
    salespulse_env: str = "production"

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Kafka security (every client: processor, API, alerting, simulator): PLAINTEXT, SSL,
    # SASL_PLAINTEXT or SASL_SSL; SASL PLAIN or SCRAM-SHA-256/512; CA and client certificate.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # What SalesPulse produces to Kafka (the processor's changelog, kpi.updates and dead letters,
    # the events the API ingests, alerts, the simulator's events) is compressed with this codec;
    # consumers read any. Off by default: lz4 took a third of the broker's CPU off at 5,000
    # events/s over a 300,000-event history, but over 1,000,000 (customers' rows of some 200
    # orders) the workers' changelog writes took longer and the latency grew (docs/performance.md).
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    # redis://[:password@]host:port/db, or rediss:// for TLS (add ?ssl_ca_certs=/path/ca.pem).
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Access to /api/v1 (README "Access control"): named keys with scopes read, write
    # (targets, rules, profiles, directory) and ingest, e.g.
    # {"wallboard-admin": {"key": "…", "scopes": ["read", "write"]}}; read-only wallboard
    # tokens, also accepted as ?token= (a browser's EventSource cannot send headers).
    api_keys: Annotated[dict[str, ApiKey], NoDecode] = Field(default_factory=dict)
    wallboard_tokens: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Web pages of other origins allowed to call the API from a browser (CORS), comma-separated
    # (https://intranet.example.com), or `*` for any; none by default. Keys go in headers, not
    # cookies, so an allowed origin still needs one.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # POST /events: events per second per key (per client address without keys), and the burst.
    ingest_rate_limit: float = Field(default=2000, gt=0)
    ingest_burst: int = Field(default=5000, ge=1)

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
    processor_batch_size: int = Field(default=10000, ge=1)
    processor_batch_seconds: float = Field(default=0.05, gt=0)
    # How often the rows batches changed are written to the state changelog (once per row
    # however many batches changed it; offsets are committed after): 0 writes every batch's.
    # A crashed worker's successor handles again the events of up to this long.
    processor_flush_seconds: float = Field(default=1.0, ge=0, le=60)
    # Static membership: a worker restarted under the same id takes its partitions back at once,
    # without a rebalance; unset, a crashed worker's partitions wait for its session to time out.
    processor_instance_id: str | None = None
    processor_session_timeout: float = Field(default=20.0, ge=6, le=300)
    # Standby copies per partition, kept warm by other workers (0: a takeover reads the whole
    # changelog partition). At most workers - 1 copies are kept; each costs a copy of the rows.
    processor_standby_replicas: int = Field(default=0, ge=0, le=5)
    # kpi.updates: each changed row's values at most once per KPI_UPDATES_SECONDS (the latest),
    # for the dimensions screens watch; the rest (one row per customer) are read, not pushed.
    kpi_updates_seconds: float = Field(default=0.2, gt=0, le=60)
    kpi_updates_skip_dimensions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["customer"])

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
    # A Ping action this often; a connection that brings nothing for twice as long is reopened.
    ami_ping_seconds: float = Field(default=20.0, gt=0, le=3600)

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
        """{"USD": "0.92"}: each a currency code and a positive rate, a JSON number or a decimal
        text (a rate of 0 or less would count every amount in it as nothing, or negative)."""
        if isinstance(raw, str):
            import json

            raw = json.loads(raw) if raw.strip() else {}
        if not isinstance(raw, dict):
            return raw
        rates = {}
        for code, value in raw.items():
            currency = _currency_code(str(code), "FX_RATES")
            if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
                raise ValueError(f"FX_RATES[{code!r}] is a number or a decimal text, not {value!r}")
            try:
                rate = Decimal(str(value).strip())
            except ArithmeticError:
                raise ValueError(f"FX_RATES[{code!r}] is a number or a decimal text, not {value!r}") from None
            if not rate.is_finite() or rate <= 0:
                raise ValueError(f"FX_RATES[{code!r}] must be a positive rate (1 {currency} = rate in the "
                                 f"reporting currency), not {value!r}")
            rates[currency] = rate
        return rates

    @field_validator("bucket_retention_days", "webhook_stages", "api_keys", mode="before")
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

    @field_validator("metrics_kpis", "metrics_dimensions", "metrics_periods", "wallboard_tokens",
                     "kpi_updates_skip_dimensions", "cors_origins", mode="before")
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

    @field_validator("kpi_updates_skip_dimensions")
    @classmethod
    def _known_dimensions(cls, value: list[str]) -> list[str]:
        known = {dim for kpi in CATALOG.values() for dim in kpi.dimensions}
        unknown = [d for d in value if d not in known]
        if unknown:
            raise ValueError(f"unknown dimensions {unknown}; dimensions are {', '.join(sorted(known))}")
        return value

    @field_validator("metrics_periods")
    @classmethod
    def _known_metric_periods(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p not in ("day", "week", "month", "quarter", "year")]
        if unknown:
            raise ValueError(f"unknown periods {unknown}; periods are day, week, month, quarter, year")
        return value

    @field_validator("reporting_currency")
    @classmethod
    def _reporting_currency(cls, value: str) -> str:
        return _currency_code(value, "REPORTING_CURRENCY")

    @field_validator("webhook_currency")
    @classmethod
    def _webhook_currency(cls, value: str | None) -> str | None:
        return _currency_code(value, "WEBHOOK_CURRENCY") if value else None

    @field_validator("alert_webhook_url", "slack_webhook_url", "alertmanager_url", "wallboard_url",
                     "webhook_public_url", "ami_api_url")
    @classmethod
    def _http_url(cls, value: str | None, info) -> str | None:
        """http(s)://host...: a receiver's URL that is not one failed each delivery, retried forever."""
        from urllib.parse import urlsplit

        if value is None or (not value.strip() and cls.model_fields[info.field_name].default is None):
            return None  # an optional one left empty (docker-compose's ${SLACK_WEBHOOK_URL:-}) is unset
        try:
            parts = urlsplit(value.strip())
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises on a port that is not a number or out of range
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{info.field_name.upper()} {value!r} is not an http(s):// URL with a host")
        return value.strip()

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        """Origins as browsers send them: scheme://host[:port], no path, no trailing slash."""
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s:]+(:\d{1,5})?", origin):
                raise ValueError(f"CORS_ORIGINS: {origin!r} is not an origin such as https://intranet.example.com "
                                 "(scheme, host and port only), nor *")
        return value

    @field_validator("business_timezone", "asterisk_timezone")
    @classmethod
    def _time_zone(cls, value: str | None, info) -> str | None:
        """An IANA time zone (Europe/Paris): period buckets are cut in it, a PBX's times read in it."""
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{info.field_name.upper()} {value!r} is not an IANA time zone, such as Europe/Paris") from None
        return value

    @model_validator(mode="after")
    def _no_rate_for_the_reporting_currency(self) -> "Settings":
        if self.reporting_currency in self.fx_rates and self.fx_rates[self.reporting_currency] != 1:
            raise ValueError(f"FX_RATES gives {self.reporting_currency}, the reporting currency, a rate of "
                             f"{self.fx_rates[self.reporting_currency]}: its amounts are taken as they are")
        return self

    @property
    def development(self) -> bool:
        return self.salespulse_env == "development"

    def secrets(self) -> dict[str, str]:
        """Every secret that is set, by the variable (and key name) it comes from."""
        named = {"TWILIO_AUTH_TOKEN": self.twilio_auth_token, "AIRCALL_WEBHOOK_TOKEN": self.aircall_webhook_token,
                 "ASTERISK_WEBHOOK_TOKEN": self.asterisk_webhook_token, "HUBSPOT_CLIENT_SECRET": self.hubspot_client_secret,
                 "PIPEDRIVE_WEBHOOK_PASSWORD": self.pipedrive_webhook_password,
                 "SALESFORCE_WEBHOOK_TOKEN": self.salesforce_webhook_token, "ALERT_WEBHOOK_SECRET": self.alert_webhook_secret,
                 "AMI_SECRET": self.ami_secret, "KAFKA_SASL_PASSWORD": self.kafka_sasl_password}
        out = {name: value for name, value in named.items() if value is not None}
        out.update({f"API_KEYS[{name}]": k.key for name, k in self.api_keys.items()})
        out.update({f"WALLBOARD_TOKENS[{i}]": token for i, token in enumerate(self.wallboard_tokens)})
        from urllib.parse import urlsplit

        password = urlsplit(self.redis_url).password
        if password is not None:
            out["REDIS_URL password"] = password
        return out

    @model_validator(mode="after")
    def _real_secrets_outside_development(self) -> "Settings":
        if self.development:
            return self
        weak = [name for name, value in self.secrets().items() if is_placeholder(value)
                or (name.startswith(("API_KEYS[", "WALLBOARD_TOKENS[")) and len(value) < MIN_KEY_LENGTH)]
        if weak:
            raise ValueError(f"{', '.join(weak)}: a placeholder or too short (keys and tokens: at least "
                             f"{MIN_KEY_LENGTH} characters); set real secrets, or SALESPULSE_ENV=development "
                             "on a development machine")
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs KAFKA_SASL_USERNAME "
                             "and KAFKA_SASL_PASSWORD")
        return self

    def kafka_options(self) -> dict:
        """aiokafka client arguments for KAFKA_SECURITY_PROTOCOL and its credentials."""
        options: dict = {"bootstrap_servers": self.kafka_bootstrap_servers,
                         "security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
                certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
                keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None)
        if self.kafka_security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.kafka_sasl_mechanism, sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password)
        return options

    def producer_options(self) -> dict:
        """kafka_options, and KAFKA_COMPRESSION as aiokafka's compression_type."""
        return {**self.kafka_options(),
                "compression_type": None if self.kafka_compression == "none" else self.kafka_compression}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def kafka_client(bootstrap_servers: str) -> dict:
    """Arguments for an aiokafka client of `bootstrap_servers` with this process's Kafka
    security settings (KAFKA_SECURITY_PROTOCOL and its credentials)."""
    return {**get_settings().kafka_options(), "bootstrap_servers": bootstrap_servers}


def kafka_producer(bootstrap_servers: str) -> dict:
    """kafka_client's arguments, and the compression of KAFKA_COMPRESSION (a producer's)."""
    return {**get_settings().producer_options(), "bootstrap_servers": bootstrap_servers}
