"""Shared test configuration: integration fixtures live in tests/integration/conftest.py."""

import os

from hypothesis import settings

# The tests run the services as a development machine does (no API key needed, test secrets);
# the access-control tests start theirs with SALESPULSE_ENV=production and real-looking keys.
os.environ.setdefault("SALESPULSE_ENV", "development")

# No time limit on an example: Hypothesis's default (200 ms) made the aggregation properties fail
# with DeadlineExceeded on a busy 2-core machine (an example that took 29 ms alone took 345 ms
# beside a CPU load). Speed is measured by `make bench`, not by unit tests.
settings.register_profile("salespulse", deadline=None)
settings.load_profile("salespulse")
