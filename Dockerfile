# One image for every SalesPulse service; the command picks the service:
#   python -m salespulse.processor | python -m salespulse.api | python -m salespulse.simulator
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/var/lib/salespulse API_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
RUN pip install . && useradd --system --home-dir /var/lib/salespulse --create-home salespulse
USER salespulse
EXPOSE 8000 9102
CMD ["python", "-m", "salespulse.api"]
