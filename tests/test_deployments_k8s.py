"""The Kubernetes manifests in deployments/: they build, validate and agree with the settings.

Offline: ``kubectl kustomize`` renders the kustomizations and ``kubernetes-validate --strict``
checks every object against the bundled Kubernetes 1.37 schemas. kubectl is required (the test
fails without it rather than skipping).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.definition.duration import parse_duration
from engine.settings import EngineSettings
from orchestrator.settings import OrchestratorSettings

ROOT = Path(__file__).parents[1]
DEPLOYMENTS = ROOT / "deployments"
K8S_VERSION = "1.37.0"
NAMESPACE = "weir"
# Written by others or not Kubernetes objects.
NOT_MANIFESTS = {"kustomization.yaml", "docker-compose.yml", "docker-compose.yaml"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
ENGINE_SERVICE_NAME = "weir.engine.v1.Engine"

Doc = dict[str, Any]


def _defaults(cls: type[EngineSettings] | type[OrchestratorSettings]) -> dict[str, Any]:
    return {name: field.default for name, field in cls.model_fields.items()}


ENGINE_DEFAULTS = _defaults(EngineSettings)
ORCHESTRATOR_DEFAULTS = _defaults(OrchestratorSettings)


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl is not on PATH: these tests need it (`kubectl kustomize`); install kubectl "
            "1.27 or newer (the test scripts do)",
            pytrace=False,
        )
    return path


def kustomize(directory: Path) -> tuple[str, list[Doc]]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]


def validate(*args: str, stdin: str | None = None) -> list[str]:
    """Run kubernetes-validate --strict; fail on any error; return its WARN lines."""
    validator = Path(sys.executable).parent / "kubernetes-validate"
    assert validator.exists(), "kubernetes-validate is a dev dependency; scripts/test installs it"
    proc = subprocess.run(
        [str(validator), "--strict", "-k", K8S_VERSION, "--quiet", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    problems = [line for line in lines if not line.startswith("WARN ")]
    assert proc.returncode == 0 and not problems, output
    return [line for line in lines if line.startswith("WARN ")]


def only_servicemonitor_warnings(warnings: list[str]) -> None:
    unexpected = [
        w
        for w in warnings
        if not re.search(
            r"Couldn't find schema for kind ServiceMonitor with api version "
            r"monitoring\.coreos\.com/v1 ",
            w,
        )
    ]
    assert not unexpected, "only ServiceMonitors may lack a schema:\n" + "\n".join(unexpected)


def manifest_files() -> list[Path]:
    files = []
    for path in sorted([*DEPLOYMENTS.rglob("*.yaml"), *DEPLOYMENTS.rglob("*.yml")]):
        relative = path.relative_to(DEPLOYMENTS)
        if path.name in NOT_MANIFESTS or relative.parts[0] == "prometheus":
            continue
        files.append(path)
    return files


@pytest.fixture(scope="module")
def built() -> tuple[str, list[Doc]]:
    return kustomize(DEPLOYMENTS)


@pytest.fixture(scope="module")
def docs(built: tuple[str, list[Doc]]) -> list[Doc]:
    return built[1]


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def containers(docs: list[Doc], deployment: str) -> list[Doc]:
    spec = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    result: list[Doc] = spec["containers"]
    return result


def container(docs: list[Doc], deployment: str) -> Doc:
    (only,) = containers(docs, deployment)
    return only


def env_values(docs: list[Doc], deployment: str) -> dict[str, str | None]:
    """Every variable the container gets: ConfigMap keys (envFrom) and its env (None: valueFrom)."""
    found: dict[str, str | None] = {}
    c = container(docs, deployment)
    for source in c.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"{deployment}: envFrom only from ConfigMaps"
        found.update(find(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        found[var["name"]] = var.get("value")
    return found


def pod_labels(docs: list[Doc], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = find(docs, "Deployment", deployment)["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def named_ports(c: Doc) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in c["ports"]}


# -- the sources ------------------------------------------------------------------------------


def test_every_manifest_file_validates_strictly() -> None:
    files = manifest_files()
    names = {str(p.relative_to(DEPLOYMENTS)) for p in files}
    assert {"monitoring/servicemonitors.yaml", "postgres-secret.example.yaml"} <= names
    warnings = validate(*map(str, files))
    only_servicemonitor_warnings(warnings)
    assert len(warnings) == 2, warnings  # the two ServiceMonitors, nothing else


def test_readme_describes_every_manifest_file() -> None:
    readme = (DEPLOYMENTS / "README.md").read_text()
    missing = [
        str(p.relative_to(DEPLOYMENTS))
        for p in manifest_files()
        if str(p.relative_to(DEPLOYMENTS)) not in readme
    ]
    assert not missing, f"deployments/README.md should describe {missing}"


def test_example_secret_is_not_deployed(docs: list[Doc]) -> None:
    kustomization = yaml.safe_load((DEPLOYMENTS / "kustomization.yaml").read_text())
    assert "postgres-secret.example.yaml" not in kustomization["resources"]
    assert not [d for d in docs if d["kind"] == "Secret"]
    (example,) = yaml.safe_load_all((DEPLOYMENTS / "postgres-secret.example.yaml").read_text())
    assert example["metadata"]["name"] == "weir-postgres"
    assert example["stringData"]["url"].startswith("postgresql://")


# -- the build --------------------------------------------------------------------------------


def test_build_has_the_expected_objects(docs: list[Doc]) -> None:
    found = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert found == {
        ("Namespace", "weir"),
        ("ServiceAccount", "weir-orchestrator"),
        ("ServiceAccount", "weir-engine"),
        ("Role", "weir-orchestrator"),
        ("RoleBinding", "weir-orchestrator"),
        ("ConfigMap", "weir-config"),
        ("ConfigMap", "weir-engine-config"),
        ("Deployment", "weir-engine"),
        ("Service", "weir-engine"),
        ("PodDisruptionBudget", "weir-engine"),
        ("HorizontalPodAutoscaler", "weir-engine"),
        ("NetworkPolicy", "weir-engine"),
        ("Deployment", "weir-orchestrator"),
        ("Service", "weir-orchestrator"),
        ("NetworkPolicy", "weir-orchestrator"),
        ("Deployment", "weir-example-worker"),
    }


def test_build_is_in_the_weir_namespace_and_labelled(docs: list[Doc]) -> None:
    for d in docs:
        meta = d["metadata"]
        where = f"{d['kind']}/{meta['name']}"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "weir", where
        if d["kind"] in CLUSTER_SCOPED:
            assert d["kind"] == "Namespace", f"no cluster-wide objects: {where}"
            assert "namespace" not in meta, where
        else:
            assert meta.get("namespace") == NAMESPACE, where


def test_build_validates_strictly(built: tuple[str, list[Doc]]) -> None:
    assert validate("-", stdin=built[0]) == []


def test_monitoring_builds_servicemonitors_for_both_services(docs: list[Doc]) -> None:
    text, monitors = kustomize(DEPLOYMENTS / "monitoring")
    assert {(d["kind"], d["metadata"]["name"]) for d in monitors} == {
        ("ServiceMonitor", "weir-orchestrator"),
        ("ServiceMonitor", "weir-engine"),
    }
    only_servicemonitor_warnings(validate("-", stdin=text))
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in monitors:
        assert monitor["metadata"]["namespace"] == NAMESPACE
        wanted = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in ports
            assert endpoint["path"] == "/metrics"


def test_main_build_does_not_need_the_operator(docs: list[Doc]) -> None:
    assert not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]


# -- RBAC -------------------------------------------------------------------------------------

ENDPOINTSLICES_RULE = {
    "apiGroups": ["discovery.k8s.io"],
    "resources": ["endpointslices"],
    "verbs": ["get", "list", "watch"],
}
PODS_RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}


def assert_least_privilege(rules: list[Doc]) -> None:
    for rule in rules:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], rule
        assert "*" not in rule["apiGroups"], rule
        assert "secrets" not in rule["resources"], rule
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames games


def test_role_allows_reading_endpointslices_and_nothing_else(docs: list[Doc]) -> None:
    role = find(docs, "Role", "weir-orchestrator")
    assert role["rules"] == [ENDPOINTSLICES_RULE]
    assert_least_privilege(role["rules"])
    binding = find(docs, "RoleBinding", "weir-orchestrator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "weir-orchestrator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "weir-orchestrator", "namespace": NAMESPACE}
    ]
    assert find(docs, "ConfigMap", "weir-config")["data"]["K8S_WATCH"] == "endpointslices"


def test_service_accounts(docs: list[Doc]) -> None:
    orchestrator = find(docs, "Deployment", "weir-orchestrator")["spec"]["template"]["spec"]
    engine = find(docs, "Deployment", "weir-engine")["spec"]["template"]["spec"]
    assert orchestrator["serviceAccountName"] == "weir-orchestrator"
    assert engine["serviceAccountName"] == "weir-engine"
    assert engine["automountServiceAccountToken"] is False
    assert find(docs, "ServiceAccount", "weir-engine")["automountServiceAccountToken"] is False


def test_watch_pods_component_adds_exactly_the_pods_rule(tmp_path: Path) -> None:
    def rel(path: Path) -> str:
        return Path(
            *[".."] * len(tmp_path.resolve().parts[1:]), *path.resolve().parts[1:]
        ).as_posix()

    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(DEPLOYMENTS)],
                "components": [rel(DEPLOYMENTS / "components" / "watch-pods")],
            }
        )
    )
    text, docs = kustomize(tmp_path)
    assert validate("-", stdin=text) == []
    role = find(docs, "Role", "weir-orchestrator")
    assert role["rules"] == [ENDPOINTSLICES_RULE, PODS_RULE]
    assert_least_privilege(role["rules"])
    assert find(docs, "ConfigMap", "weir-config")["data"]["K8S_WATCH"] == "pods"


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment", "settings"),
    [("weir-engine", EngineSettings), ("weir-orchestrator", OrchestratorSettings)],
)
def test_every_variable_is_a_setting_and_the_values_are_valid(
    docs: list[Doc], deployment: str, settings: type[EngineSettings] | type[OrchestratorSettings]
) -> None:
    env = env_values(docs, deployment)
    known = {name.upper() for name in settings.model_fields}
    assert set(env) <= known, f"{deployment}: not settings: {sorted(set(env) - known)}"
    literal = {k: v for k, v in env.items() if v is not None}
    if settings is OrchestratorSettings:
        literal["STORE_URL"] = "postgresql://weir:secret@postgres:5432/weir"
    settings.from_env(literal)  # raises SettingsError naming a bad value


def config_comments() -> str:
    return "\n".join(
        line.split("#", 1)[1]
        for line in (DEPLOYMENTS / "config.yaml").read_text().splitlines()
        if "#" in line
    )


@pytest.mark.parametrize(
    ("deployment", "settings"),
    [("weir-engine", EngineSettings), ("weir-orchestrator", OrchestratorSettings)],
)
def test_every_setting_is_set_or_documented_in_the_configmap_file(
    docs: list[Doc], deployment: str, settings: type[EngineSettings] | type[OrchestratorSettings]
) -> None:
    env = env_values(docs, deployment)
    comments = config_comments()
    missing = [
        name.upper()
        for name in settings.model_fields
        if name.upper() not in env and not re.search(rf"\b{name.upper()}\b", comments)
    ]
    assert not missing, f"set these or list them in config.yaml's comments: {missing}"


def test_orchestrator_discovers_engines_through_kubernetes(docs: list[Doc]) -> None:
    env = env_values(docs, "weir-orchestrator")
    assert env["DISCOVERY"] == "kubernetes"
    assert env["IN_CLUSTER_CONFIG"] == "true"
    assert env["K8S_SERVICE_NAME"] == ORCHESTRATOR_DEFAULTS["k8s_service_name"]
    assert env["K8S_LABEL_SELECTOR"] == ORCHESTRATOR_DEFAULTS["k8s_label_selector"]
    variables = {v["name"]: v for v in container(docs, "weir-orchestrator")["env"]}
    field_of = {
        k: v["valueFrom"]["fieldRef"]["fieldPath"]
        for k, v in variables.items()
        if "fieldRef" in v.get("valueFrom", {})
    }
    assert field_of == {"ORCHESTRATOR_ID": "metadata.name", "K8S_NAMESPACE": "metadata.namespace"}
    assert variables["STORE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "weir-postgres",
        "key": "url",
    }
    assert variables["API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "weir-api",
        "key": "token",
        "optional": True,
    }
    engine_env = {v["name"]: v for v in container(docs, "weir-engine")["env"]}
    assert engine_env["ENGINE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_engine_names_match_the_discovery_defaults(docs: list[Doc]) -> None:
    selector = dict(
        pair.split("=", 1) for pair in ORCHESTRATOR_DEFAULTS["k8s_label_selector"].split(",")
    )
    deployment = find(docs, "Deployment", "weir-engine")
    assert deployment["spec"]["selector"] == {"matchLabels": selector}
    assert selector.items() <= pod_labels(docs, "weir-engine").items()
    service = find(docs, "Service", ORCHESTRATOR_DEFAULTS["k8s_service_name"])
    assert service["metadata"]["name"] == ORCHESTRATOR_DEFAULTS["engine_dns_name"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is False
    # Discovery dials the EndpointSlice port named grpc.
    assert "grpc" in {p["name"] for p in service["spec"]["ports"]}


def test_ports_match_the_settings_and_the_services(docs: list[Doc]) -> None:
    engine = container(docs, "weir-engine")
    orchestrator = container(docs, "weir-orchestrator")
    assert named_ports(engine) == {
        "grpc": ENGINE_DEFAULTS["port"],
        "metrics": ENGINE_DEFAULTS["metrics_port"],
    }
    assert named_ports(orchestrator) == {
        "grpc": ORCHESTRATOR_DEFAULTS["grpc_port"],
        "http": ORCHESTRATOR_DEFAULTS["http_port"],
    }
    assert ORCHESTRATOR_DEFAULTS["engine_port"] == ENGINE_DEFAULTS["port"]
    engine_env = env_values(docs, "weir-engine")
    assert int(engine_env["PORT"] or 0) == named_ports(engine)["grpc"]
    assert int(engine_env["METRICS_PORT"] or 0) == named_ports(engine)["metrics"]
    orchestrator_env = env_values(docs, "weir-orchestrator")
    assert int(orchestrator_env["GRPC_PORT"] or 0) == named_ports(orchestrator)["grpc"]
    assert int(orchestrator_env["HTTP_PORT"] or 0) == named_ports(orchestrator)["http"]
    assert int(orchestrator_env["ENGINE_PORT"] or 0) == named_ports(engine)["grpc"]
    for name, c in (("weir-engine", engine), ("weir-orchestrator", orchestrator)):
        service = find(docs, "Service", name)
        ports = named_ports(c)
        assert {p["name"] for p in service["spec"]["ports"]} == set(ports)
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            number = ports[target] if isinstance(target, str) else target
            assert number == port["port"] == ports[port["name"]], port


# -- pods -------------------------------------------------------------------------------------


def all_containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for d in docs:
        if d["kind"] == "Deployment":
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield d, c


def test_pods_are_locked_down(docs: list[Doc]) -> None:
    for deployment, c in all_containers(docs):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        security = c["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume
        assert set(c["resources"]) == {"requests", "limits"}
        if deployment["metadata"]["name"] == "weir-example-worker":
            continue  # serves nothing: no probes (worker-deployment.yaml says why)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{deployment['metadata']['name']}: {probe}"


def test_images_are_set_by_kustomize(docs: list[Doc]) -> None:
    kustomization = yaml.safe_load((DEPLOYMENTS / "kustomization.yaml").read_text())
    assert {i["name"] for i in kustomization["images"]} == {
        "weir-engine",
        "weir-orchestrator",
        "weir-example-worker",
    }
    assert container(docs, "weir-example-worker")["image"] == "weir-example-worker:0.1.0"
    assert container(docs, "weir-engine")["image"] == "weir-engine:0.1.0"
    assert container(docs, "weir-orchestrator")["image"] == "weir-orchestrator:0.1.0"


def test_engine_probes_drain_and_scaling(docs: list[Doc]) -> None:
    from engine.server.process import SERVICE_NAME

    assert SERVICE_NAME == ENGINE_SERVICE_NAME
    engine = container(docs, "weir-engine")
    grpc_port = named_ports(engine)["grpc"]
    assert engine["readinessProbe"]["grpc"] == {"port": grpc_port, "service": SERVICE_NAME}
    assert engine["livenessProbe"]["grpc"] == {"port": grpc_port}
    assert engine["startupProbe"]["grpc"] == {"port": grpc_port}
    deployment = find(docs, "Deployment", "weir-engine")
    pod = deployment["spec"]["template"]["spec"]
    grace = parse_duration(env_values(docs, "weir-engine")["SHUTDOWN_GRACE_PERIOD"] or "")
    assert pod["terminationGracePeriodSeconds"] > grace + 10
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(named_ports(engine)["metrics"])
    assert "replicas" not in deployment["spec"], "the HPA owns the engines' replica count"
    assert pod["topologySpreadConstraints"] or pod["affinity"]["podAntiAffinity"]
    hpa = find(docs, "HorizontalPodAutoscaler", "weir-engine")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "weir-engine",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    pdb = find(docs, "PodDisruptionBudget", "weir-engine")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"] == deployment["spec"]["selector"]


def test_orchestrator_is_a_single_recreated_replica(docs: list[Doc]) -> None:
    deployment = find(docs, "Deployment", "weir-orchestrator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    c = container(docs, "weir-orchestrator")
    http = named_ports(c)["http"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["readinessProbe"]["httpGet"]["port"] in ("http", http)
    assert c["livenessProbe"]["grpc"] == {"port": named_ports(c)["grpc"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(http)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert find(docs, "Service", "weir-orchestrator")["spec"]["type"] == "ClusterIP"


def test_only_the_orchestrator_reaches_the_engines_grpc_port(docs: list[Doc]) -> None:
    policy = find(docs, "NetworkPolicy", "weir-engine")["spec"]
    assert policy["podSelector"] == find(docs, "Deployment", "weir-engine")["spec"]["selector"]
    grpc_rule, metrics_rule = policy["ingress"]
    orchestrator = pod_labels(docs, "weir-orchestrator")
    (peer,) = grpc_rule["from"]
    assert peer["podSelector"]["matchLabels"].items() <= orchestrator.items()
    assert [p["port"] for p in grpc_rule["ports"]] == ["grpc"]
    assert "from" not in metrics_rule
    assert [p["port"] for p in metrics_rule["ports"]] == ["metrics"]


def test_task_workers_reach_the_orchestrators_grpc_port(docs: list[Doc]) -> None:
    policy = find(docs, "NetworkPolicy", "weir-orchestrator")["spec"]
    assert (
        policy["podSelector"] == find(docs, "Deployment", "weir-orchestrator")["spec"]["selector"]
    )
    grpc_rule, http_rule = policy["ingress"]
    worker = pod_labels(docs, "weir-example-worker")
    assert any(
        peer["podSelector"]["matchLabels"].items() <= worker.items() for peer in grpc_rule["from"]
    )
    assert [p["port"] for p in grpc_rule["ports"]] == ["grpc"]
    assert "grpc" in named_ports(container(docs, "weir-orchestrator"))
    assert "from" not in http_rule and [p["port"] for p in http_rule["ports"]] == ["http"]
    (env,) = [
        e for e in container(docs, "weir-example-worker")["env"] if e["name"] == "WEIR_SERVER"
    ]
    service = find(docs, "Service", "weir-orchestrator")
    grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert env["value"] == f"{service['metadata']['name']}:{grpc_port}"
