"""Run the SalesPulse API with uvicorn on API_HOST:API_PORT (default 127.0.0.1:8000).

    python -m salespulse.api
"""

from __future__ import annotations

import logging

import uvicorn

from salespulse.api.app import create_app
from salespulse.settings import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Live streams (GET /api/v1/stream) never end by themselves: on shutdown, give requests 3 s,
    # then close them; the screens reconnect to another replica or to this one once back.
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="info", access_log=False, timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
