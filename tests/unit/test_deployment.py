"""docker-compose.yml and the Dockerfile stay consistent with the code (no Docker engine needed)."""

from pathlib import Path

import yaml

from salespulse.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
KNOWN_ENV = {name.upper() for name in Settings.model_fields} | {"SIMULATE", "SIM_RATE"}


def test_the_stack_has_every_piece_with_a_healthcheck():
    assert {"kafka", "redis", "processor", "api", "simulator"} <= set(SERVICES)
    for name in ("kafka", "redis", "processor", "api"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_kafka_is_apache_kafka_4_1_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_services_wait_for_healthy_dependencies():
    for name in ("processor", "api", "simulator"):
        for dependency in SERVICES[name]["depends_on"].values():
            assert dependency["condition"] == "service_healthy"


def test_every_setting_the_stack_passes_is_one_the_code_reads():
    for name in ("processor", "api", "simulator"):
        unknown = set(SERVICES[name]["environment"]) - KNOWN_ENV
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def test_the_image_runs_the_services_from_the_dockerfile():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for name, module in (("processor", "salespulse.processor"), ("api", "salespulse.api"),
                         ("simulator", "salespulse.simulator")):
        assert SERVICES[name]["command"] == ["python", "-m", module]
        assert Path(REPO_ROOT, "services", module.split(".")[1], "__main__.py").exists()
