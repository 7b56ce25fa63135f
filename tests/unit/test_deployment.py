"""docker-compose.yml and the Dockerfile stay consistent with the code (no Docker engine needed)."""

from pathlib import Path

import yaml

from salespulse.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
KNOWN_ENV = {name.upper() for name in Settings.model_fields} | {"SIMULATE", "SIM_RATE"}


SALESPULSE = ("processor", "api", "alerting", "simulator")


def test_the_stack_has_every_piece_with_a_healthcheck():
    assert {"kafka", "redis", "prometheus", "alertmanager", "grafana", *SALESPULSE} <= set(SERVICES)
    for name in set(SERVICES) - {"simulator"}:  # the simulator is a client that may finish
        assert SERVICES[name]["healthcheck"]["test"], name


def test_mounted_configuration_exists_and_prometheus_scrapes_every_service_on_its_port():
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), volume
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {"salespulse-api": ["api:8000"], "salespulse-processor": [
        f"processor:{SERVICES['processor']['environment']['PROCESSOR_METRICS_PORT']}"],
        "salespulse-alerting": [f"alerting:{SERVICES['alerting']['environment']['ALERTING_METRICS_PORT']}"]}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert SERVICES["alerting"]["environment"]["ALERTMANAGER_URL"] == "http://alertmanager:9093"


def test_third_party_images_are_pinned():
    for name in ("kafka", "redis", "prometheus", "alertmanager", "grafana"):
        image = SERVICES[name]["image"]
        assert ":" in image and not image.endswith(":latest"), image


def test_kafka_is_apache_kafka_4_1_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.1.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_services_wait_for_healthy_dependencies():
    for name in SALESPULSE:
        for dependency in SERVICES[name]["depends_on"].values():
            assert dependency["condition"] == "service_healthy"


def test_every_setting_the_stack_passes_is_one_the_code_reads():
    for name in SALESPULSE:
        unknown = set(SERVICES[name]["environment"]) - KNOWN_ENV
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def test_the_image_runs_the_services_from_the_dockerfile():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for name, module in (("processor", "salespulse.processor"), ("api", "salespulse.api"),
                         ("alerting", "salespulse.alerting"), ("simulator", "salespulse.simulator")):
        assert SERVICES[name]["command"] == ["python", "-m", module]
        assert Path(REPO_ROOT, "services", module.split(".")[1], "__main__.py").exists()


def test_every_python_package_of_the_services_is_installed_by_a_non_editable_install():
    """The image runs `pip install .`: a sub-package missing from pyproject.toml would be left out."""
    import tomllib

    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"salespulse." + ".".join(p.parent.relative_to(REPO_ROOT / "services").parts)
             for p in (REPO_ROOT / "services").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
