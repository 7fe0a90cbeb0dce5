"""Deployment definitions are valid documents and agree with the code they deploy."""

from __future__ import annotations

import json
import re
from importlib import resources

import jsonschema
import kubernetes_validate
import pytest
import yaml

from carprice.config import PROJECT_ROOT

K8S = sorted((PROJECT_ROOT / "deploy" / "k8s").glob("*.yaml"))
GUNICORN = (PROJECT_ROOT / "serving" / "gunicorn.conf.py").read_text()


def load(path):
    return yaml.safe_load(path.read_text())


def by_kind():
    return {load(p)["kind"]: load(p) for p in K8S}


def vendored_schema(name: str) -> dict:
    files = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(files.joinpath(f"{name}.json").read_text())


@pytest.mark.parametrize("path", K8S, ids=lambda p: p.name)
def test_each_kubernetes_manifest_validates_against_the_api_schema(path):
    kubernetes_validate.validate(load(path), "1.37.0", strict=True)


def test_a_broken_manifest_is_caught_by_the_validator():
    broken = load(PROJECT_ROOT / "deploy" / "k8s" / "deployment.yaml")
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


def test_the_deployment_probes_readiness_and_liveness_separately():
    container = by_kind()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_termination_grace_outlasts_gunicorns_graceful_timeout():
    graceful = int(re.search(r"^graceful_timeout = (\d+)", GUNICORN, re.M).group(1))
    spec = by_kind()["Deployment"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > graceful + 5  # + the preStop sleep
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_service_hpa_and_budget_point_at_the_deployment():
    kinds = by_kind()
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    for key, value in kinds["Service"]["spec"]["selector"].items():
        assert labels[key] == value
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "carprice"
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_the_configuration_only_sets_variables_the_service_reads():
    for name in by_kind()["ConfigMap"]["data"]:
        assert name in GUNICORN or name in (PROJECT_ROOT / "serving" / "runtime.py").read_text()


def test_the_compose_stack_validates_and_wires_the_store_and_scraping():
    compose = load(PROJECT_ROOT / "deploy" / "docker-compose.yml")
    jsonschema.validate(compose, vendored_schema("compose-spec"))
    services = compose["services"]
    assert {"carprice", "postgres", "mlflow", "prometheus"} <= services.keys()
    assert services["carprice"]["environment"]["CARPRICE_DB_URL"].startswith(
        "postgresql+psycopg://"
    )
    assert services["carprice"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    scrape = load(PROJECT_ROOT / "deploy" / "prometheus.yml")["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["carprice:8000"]


def make_targets() -> set[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.M))


def test_the_cd_pipeline_validates_and_calls_existing_make_targets():
    path = PROJECT_ROOT / ".github" / "workflows" / "retrain.yml"
    workflow = load(path)
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    jsonschema.validate(workflow, vendored_schema("github-workflows"))
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    called = set(re.findall(r"\bmake ([a-z][\w-]*)", "\n".join(runs)))
    assert {"retrain", "image"} <= called
    assert called <= make_targets(), called - make_targets()
