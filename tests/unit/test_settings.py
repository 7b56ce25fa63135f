"""Settings a service would misread are refused at start, with what to set instead."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from salespulse.settings import Settings


def settings(**env: str) -> Settings:
    return Settings(salespulse_env="development", **env)


@pytest.mark.parametrize("env, says", [
    # A rate of 0 or less counted every amount in that currency as nothing or negative; a text
    # that is no number raised decimal.InvalidOperation, not a settings error.
    ({"fx_rates": '{"USD": 0}'}, "must be a positive rate"),
    ({"fx_rates": '{"USD": -0.92}'}, "must be a positive rate"),
    ({"fx_rates": '{"USD": "Infinity"}'}, "must be a positive rate"),
    ({"fx_rates": '{"USD": "lots"}'}, "is a number or a decimal text"),
    ({"fx_rates": '{"USD": true}'}, "is a number or a decimal text"),
    ({"fx_rates": '{"USD": [1]}'}, "is a number or a decimal text"),
    ({"fx_rates": '{"DOLLARS": 1}'}, "is not a currency code"),
    ({"fx_rates": '{"EUR": 2}'}, "the reporting currency, a rate of 2"),
    # Taken as they were: "EURO" (no event carries it: every amount needed a rate), or none at all.
    ({"reporting_currency": "euro"}, "is not a currency code"),
    ({"reporting_currency": ""}, "is not a currency code"),
    ({"webhook_currency": "US$"}, "is not a currency code"),
    # Taken, then every service stopped at its first period bucket.
    ({"business_timezone": "Mars/Olympus_Mons"}, "is not an IANA time zone"),
    ({"business_timezone": "../../etc/passwd"}, "is not an IANA time zone"),
    ({"asterisk_timezone": "CEST"}, "ASTERISK_TIMEZONE 'CEST' is not an IANA time zone"),
    # Each delivery to it failed, retried forever with backoff.
    ({"alert_webhook_url": "hooks.example.com/salespulse", "alert_webhook_secret": "s" * 20},
     "ALERT_WEBHOOK_URL 'hooks.example.com/salespulse' is not an http"),
    ({"slack_webhook_url": "htps://hooks.slack.com/services/T0/B0/x"}, "SLACK_WEBHOOK_URL"),
    ({"alertmanager_url": "http://:9093"}, "ALERTMANAGER_URL"),
    ({"alertmanager_url": "http://127.0.0.1:99999"}, "ALERTMANAGER_URL"),
])
def test_settings_a_service_would_misread_are_refused_with_what_to_set(env, says):
    with pytest.raises(ValidationError, match=says):
        settings(**env)


def test_rates_and_codes_as_people_write_them_are_taken():
    taken = settings(fx_rates='{"usd": "0.92", "GBP": 1.17, "JPY": " 0.0062 ", "EUR": 1}', reporting_currency="eur",
                     webhook_currency="usd", business_timezone="America/New_York")
    assert taken.fx_rates == {"USD": Decimal("0.92"), "GBP": Decimal("1.17"), "JPY": Decimal("0.0062"),
                              "EUR": Decimal(1)}
    assert (taken.reporting_currency, taken.webhook_currency, taken.business_timezone) == ("EUR", "USD",
                                                                                             "America/New_York")
    assert settings(webhook_currency="").webhook_currency is None
    assert settings(alertmanager_url=" http://127.0.0.1:9093 ").alertmanager_url == "http://127.0.0.1:9093"
    assert settings(slack_webhook_url="", webhook_public_url=" ").slack_webhook_url is None  # docker-compose's ${X:-}
    with pytest.raises(ValidationError, match="WALLBOARD_URL"):
        settings(wallboard_url="")
