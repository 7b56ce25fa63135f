"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with kustomize (kubectl's
own, or one built with Go), every object is valid against the Kubernetes OpenAPI schemas (strict: an unknown or
misplaced field fails), and the settings, ports and probes they give the services are those the
services read and serve. No cluster needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from salespulse.devstack.servers import cache_dir
from salespulse.settings import REPO_ROOT, Settings

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir())
SCHEMA_VERSION = "1.32.0"  # the oldest Kubernetes release still supported upstream when written
SETTINGS = {name.upper() for name in Settings.model_fields}


KUSTOMIZE_VERSION = "v5.5.0"


def kustomize() -> list[str]:
    """A kustomize: kubectl's own, else the standalone one, built once with the machine's Go
    into the project's cache (outside git)."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    built = cache_dir() / "bin" / f"kustomize-{KUSTOMIZE_VERSION}"
    if not built.exists():
        go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
        if go is None:
            message = "kubectl or Go (to build kustomize) is needed to render deploy/kubernetes"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        gobin = built.parent / "go-install"
        subprocess.run([go, "install", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"],
                       env={**os.environ, "GOBIN": str(gobin)}, check=True, capture_output=True, timeout=900)
        (gobin / "kustomize").rename(built)
    return [str(built), "build"]


def render(overlay: str, tmp_path: Path) -> list[dict]:
    """`kustomize build` of a copy of the overlay, with secrets.env from its example if any."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secrets.env"))
    example = copy / "overlays" / overlay / "secrets.env.example"
    if example.exists():
        shutil.copy(example, example.with_suffix(""))
    out = subprocess.run([*kustomize(), str(copy / "overlays" / overlay)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request, tmp_path_factory) -> tuple[str, list[dict]]:
    return request.param, render(request.param, tmp_path_factory.mktemp(request.param))


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def container(workload: dict) -> dict:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return only


def config(docs: list[dict]) -> dict[str, str]:
    [configmap] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "salespulse-config"]
    return configmap["data"]


def test_there_is_a_local_and_a_production_overlay():
    assert {"local", "production"} <= set(OVERLAYS)


def test_every_object_is_valid_against_the_kubernetes_schemas(rendered):
    overlay, docs = rendered
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_every_setting_given_to_a_service_is_one_it_reads(rendered):
    """A misspelt variable would be ignored silently (the settings take unknown names)."""
    overlay, docs = rendered
    given = set(config(docs))
    for doc in docs:
        if doc["kind"] == "Secret":
            given |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    for workload in workloads(docs).values():
        given |= {e["name"] for e in container(workload).get("env", [])}
    assert given - SETTINGS - {"SIMULATE"} == set(), overlay


def test_every_service_takes_its_config_and_secrets_and_states_its_resources(rendered):
    overlay, docs = rendered
    for name, workload in workloads(docs).items():
        c = container(workload)
        sources = [next(iter(s.values()))["name"] for s in c["envFrom"]]
        assert sources[0] == "salespulse-config", (overlay, name)
        if name != "salespulse-simulator":  # the simulator needs no secret
            assert sources[-1] == "salespulse-secrets", (overlay, name)  # secrets win over config
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], (overlay, name)
        assert c["resources"]["limits"]["memory"], (overlay, name)
        assert workload["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_the_api_is_probed_on_healthz_and_readyz_and_scraped_on_its_port(rendered):
    overlay, docs = rendered
    api = workloads(docs)["salespulse-api"]
    c = container(api)
    [port] = [p for p in c["ports"] if p["name"] == "http"]
    assert port["containerPort"] == int(config(docs)["API_PORT"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])


def test_processor_workers_are_a_statefulset_whose_pod_names_are_their_group_instance_ids(rendered):
    overlay, docs = rendered
    processor = workloads(docs)["salespulse-processor"]
    assert processor["kind"] == "StatefulSet"
    c = container(processor)
    [instance] = [e for e in c["env"] if e["name"] == "PROCESSOR_INSTANCE_ID"]
    assert instance["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert processor["spec"]["replicas"] <= int(config(docs)["TOPIC_PARTITIONS"]), "workers beyond the partitions idle"
    [port] = c["ports"]
    assert port["containerPort"] == int(config(docs)["PROCESSOR_METRICS_PORT"])
    assert processor["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(port["containerPort"])
    assert config(docs)["PROCESSOR_METRICS_HOST"] == "0.0.0.0"  # reachable by probes and Prometheus


def test_replicated_services_have_a_disruption_budget_and_alerting_runs_alone(rendered):
    overlay, docs = rendered
    budgets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PodDisruptionBudget"}
    for name in ("salespulse-processor", "salespulse-api"):
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        labels = workloads(docs)[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), (overlay, name)
    alerting = workloads(docs)["salespulse-alerting"]
    assert alerting["spec"]["replicas"] == 1 and alerting["spec"]["strategy"]["type"] == "Recreate"


def test_only_the_local_overlay_runs_in_development_mode(rendered):
    overlay, docs = rendered
    assert (config(docs)["SALESPULSE_ENV"] == "development") == (overlay == "local")
