"""Shared test configuration: integration fixtures live in tests/integration/conftest.py."""

import os

# The tests run the services as a development machine does (no API key needed, test secrets);
# the access-control tests start theirs with SALESPULSE_ENV=production and real-looking keys.
os.environ.setdefault("SALESPULSE_ENV", "development")
