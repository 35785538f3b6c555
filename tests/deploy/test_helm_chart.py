"""deploy/helm, as `helm lint` and `helm template` see it, with the chart's own values and with
values-production.yaml: valid Kubernetes objects, and what an operator would notice."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from broker.config import load_config
from tests.conftest import require_module
from tests.deploy.chart import (
    CHART,
    KUBE_VERSION,
    PRODUCTION,
    SERVICE_MONITOR_SCHEMA,
    Rendered,
    broker_yaml,
    chart_metadata,
    helm,
    pod_spec,
    render,
    values_file,
)

VALUE_SETS = {"default": None, "production": PRODUCTION}
WARNING = 2  # helm lint severities: 1 info, 2 warning, 3 error


def values_of(name: str) -> dict[str, Any] | None:
    path = VALUE_SETS[name]
    return None if path is None else values_file(path)


@pytest.fixture(params=sorted(VALUE_SETS), scope="module")
def case(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any] | None, Rendered]:
    values = values_of(request.param)
    return request.param, values, render(values)


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return rendered.all("Deployment") + rendered.all("Job")


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# ---- helm lint, and the schemas ----

@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_has_no_warnings(name: str) -> None:
    report = helm().lint(str(CHART), values_of(name), strict=True, kube_version=f"v{KUBE_VERSION}.0")
    findings = [m for m in report["messages"] if m["severity"] >= WARNING]
    assert report["errors"] == [] and findings == [], report


def test_every_object_validates_against_the_kubernetes_schema(case: tuple[str, Any, Rendered]) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    jsonschema = require_module("jsonschema")
    _, _, rendered = case
    for obj in rendered.objects:
        if obj["kind"] == "ServiceMonitor":  # a CRD: its shape against our extract of its schema
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
        else:  # strict: an unknown (misspelt) field is an error too
            assert kubernetes_validate.validate(obj, KUBE_VERSION, strict=True) == KUBE_VERSION


def test_production_renders_every_object_kind() -> None:
    kinds = sorted(o["kind"] for o in render(values_file(PRODUCTION)).objects)
    assert kinds == sorted(["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job",
                            "NetworkPolicy", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"])


def test_schema_validation_catches_a_misspelt_field() -> None:
    """The strict validation above is not vacuous: a typo in a pod spec is refused."""
    kubernetes_validate = require_module("kubernetes_validate")
    deployment = render().one("Deployment")
    pod_spec(deployment)["terminationGracePeriodSecond"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


# ---- the pod ----

def test_pods_run_as_non_root_on_a_read_only_root_filesystem(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
            assert [m["mountPath"] for m in writable] == ["/tmp"]
            assert "emptyDir" in volumes[writable[0]["name"]]


def test_probes_point_at_readyz_and_healthz_on_the_brokers_port(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    deployment = rendered.one("Deployment")
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    config = broker_yaml(rendered.one("ConfigMap", "-config"))
    assert ports["http"] == config["server"]["port"] == 8000
    assert config["server"]["host"] == "0.0.0.0"


def test_termination_grace_covers_the_brokers_drain_and_grace(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    config = broker_yaml(rendered.one("ConfigMap", "-config"))["server"]
    spec = pod_spec(rendered.one("Deployment"))
    assert spec["terminationGracePeriodSeconds"] > config["drain_seconds"] + config["shutdown_grace_seconds"]
    # the broker drains by itself on SIGTERM: no preStop sleep that would add to the drain
    assert "lifecycle" not in spec["containers"][0]


def test_longer_shutdown_timings_lengthen_the_termination_grace() -> None:
    rendered = render({"shutdown": {"drainSeconds": 10, "graceSeconds": 45, "marginSeconds": 5}})
    config = broker_yaml(rendered.one("ConfigMap", "-config"))["server"]
    assert (config["drain_seconds"], config["shutdown_grace_seconds"]) == (10, 45)
    assert pod_spec(rendered.one("Deployment"))["terminationGracePeriodSeconds"] == 60


def test_rolling_update_never_removes_a_ready_pod_first(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    strategy = rendered.one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        annotations = render(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum(None) != checksum({"trustedProxies": ["10.0.0.0/8"]})


# ---- broker.yaml ----

def test_rendered_config_loads_with_the_brokers_model(case: tuple[str, Any, Rendered], tmp_path: Path) -> None:
    name, values, rendered = case
    configmap = rendered.one("ConfigMap", "-config")
    path = tmp_path / "broker.yaml"
    path.write_text(configmap["data"]["broker.yaml"], encoding="utf-8")
    env = {"BROKER_DB_PASSWORD": "db-pw", "BROKER_REDIS_URL": "redis://redis:6379/0",
           "LDAP_BIND_PASSWORD": "ldap-pw"}
    # server.drain_seconds / shutdown_grace_seconds: the broker's graceful shutdown (part/shutdown)
    config = load_config(path, env=env)
    shutdown = (values or {}).get("shutdown", {"drainSeconds": 5, "graceSeconds": 20})
    assert (config.server.drain_seconds, config.server.shutdown_grace_seconds) == (
        shutdown["drainSeconds"], shutdown["graceSeconds"])
    wanted = (values or {}).get("trustedProxies", [])
    assert config.server.trusted_proxies == [ipaddress.ip_network(n) for n in wanted]
    assert config.state.backend == "redis" and config.state.redis_url is not None \
        and config.state.redis_url.get_secret_value() == "redis://redis:6379/0"
    assert config.database.password is not None and config.database.password.get_secret_value() == "db-pw"
    assert config.keys is not None and str(config.keys.current.key) == "/etc/broker/keys/signing.key.pem"
    if name == "production":
        assert [str(n) for n in config.server.trusted_proxies] == ["10.244.0.0/16"]
    # the migration Job reads the same file
    assert rendered.one("ConfigMap", "-migrate-config")["data"] == configmap["data"]


def test_every_environment_reference_in_the_config_is_set_in_the_pod(case: tuple[str, Any, Rendered]) -> None:
    """A ${NAME} the pod does not set would stop the broker at start-up."""
    _, _, rendered = case
    text = rendered.one("ConfigMap", "-config")["data"]["broker.yaml"]
    references = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert {"BROKER_DB_PASSWORD", "BROKER_REDIS_URL"} <= references
    for workload in workloads(rendered):
        (container,) = pod_spec(workload)["containers"]
        assert references <= set(env_of(container)), workload["metadata"]["name"]


SECRET_VALUES = {"db-password": "S3cret-db-pw-4711", "redis-url": "rediss://:S3cret-redis@redis:6380/0",
                 "admin-token": "S3cret-admin-token-0815", "ldap-bind-password": "S3cret-ldap-pw"}
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nS3cretKeyMaterial\n-----END PRIVATE KEY-----\n"


def test_secrets_are_referenced_never_inlined() -> None:
    rendered = render({"secrets": {"values": SECRET_VALUES, "extraEnv": {"LDAP_BIND_PASSWORD": "ldap-bind-password"}},
                       "signingKeys": {"keyPem": PEM_KEY, "certPem": "-----BEGIN CERTIFICATE-----\nx\n"}})
    secrets = {s["metadata"]["name"]: s for s in rendered.all("Secret")}
    env_secret = secrets["broker-federation-broker-env"]
    assert {k: base64.b64decode(v).decode() for k, v in env_secret["data"].items()} == SECRET_VALUES
    assert base64.b64decode(secrets["broker-federation-broker-signing-keys"]["data"]["signing.key.pem"]).decode() == PEM_KEY
    everything_but_secrets = json.dumps([o for o in rendered.objects if o["kind"] != "Secret"])
    for value in [*SECRET_VALUES.values(), "S3cretKeyMaterial"]:
        assert value not in everything_but_secrets
    for workload in workloads(rendered):
        (container,) = pod_spec(workload)["containers"]
        env = env_of(container)
        for name in ("BROKER_DB_PASSWORD", "BROKER_REDIS_URL", "BROKER_ADMIN_TOKEN", "LDAP_BIND_PASSWORD"):
            assert "value" not in env[name]
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "broker-federation-broker-env"
    # the migration Job needs the environment Secret on the very first install: a hook made before it
    assert int(env_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < 0


def test_install_notes_warn_when_the_chart_made_secret_lacks_what_the_pods_need() -> None:
    assert "has no db-password, redis-url" in render().notes
    assert "WARNING" not in render({"secrets": {"values": SECRET_VALUES}}).notes
    assert "WARNING" not in render(values_file(PRODUCTION)).notes


def test_production_uses_the_secrets_it_names_and_makes_none() -> None:
    rendered = render(values_file(PRODUCTION))
    assert rendered.all("Secret") == []
    deployment = rendered.one("Deployment")
    (container,) = pod_spec(deployment)["containers"]
    env = env_of(container)
    assert env["BROKER_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "broker-env", "key": "db-password"}
    assert env["LDAP_BIND_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "broker-env", "key": "ldap-bind-password"}
    assert env["BROKER_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    keys = {v["name"]: v for v in pod_spec(deployment)["volumes"]}["keys"]["secret"]
    assert keys == {"secretName": "broker-signing-keys", "defaultMode": 0o400}  # the broker refuses group-readable keys


def test_redis_url_may_come_from_a_secret_of_its_own() -> None:
    rendered = render({"redis": {"existingSecret": "redis-sentinel", "key": "url"}})
    (container,) = pod_spec(rendered.one("Deployment"))["containers"]
    assert env_of(container)["BROKER_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-sentinel", "key": "url"}


def test_extra_files_are_mounted_read_only_in_the_pods_and_the_migration() -> None:
    """A CA bundle broker.yaml names (directory.ca_file...) must exist for the Job too: the model checks it."""
    rendered = render({"extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
                       "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/broker/ca", "readOnly": True}]})
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        assert {"name": "corp-ca", "configMap": {"name": "corp-ca"}} in spec["volumes"]
        mounts = spec["containers"][0]["volumeMounts"]
        assert {"name": "corp-ca", "mountPath": "/etc/broker/ca", "readOnly": True} in mounts
    sdk = helm()
    with pytest.raises(sdk.HelmValuesError, match="readOnly"):
        render({"extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/broker/ca", "readOnly": False}]})


# ---- the migration ----

def test_migration_runs_as_a_pre_install_and_pre_upgrade_hook(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    job = rendered.one("Job", "-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    (container,) = pod_spec(job)["containers"]
    assert container["args"][0] == "migrate"
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_the_migration_job_needs_nothing_made_after_it(case: tuple[str, Any, Rendered]) -> None:
    """Hooks run before the release's other objects exist: every ConfigMap/Secret the Job reads is
    a hook with a lower weight, or a Secret the operator made (not rendered)."""
    _, _, rendered = case
    job = rendered.one("Job", "-migrate")
    weight = int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    hooks = {(o["kind"], o["metadata"]["name"]): int(o["metadata"]["annotations"].get("helm.sh/hook-weight", "0"))
             for o in rendered.hooks()}
    ordinary = {(o["kind"], o["metadata"]["name"]) for o in rendered.not_hooks()}
    spec = pod_spec(job)
    needed = {("ConfigMap", v["configMap"]["name"]) for v in spec["volumes"] if "configMap" in v}
    needed |= {("Secret", v["secret"]["secretName"]) for v in spec["volumes"] if "secret" in v}
    for env in spec["containers"][0]["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            needed.add(("Secret", ref["name"]))
    assert "serviceAccountName" not in spec  # the chart's ServiceAccount is an ordinary object
    assert needed
    for item in needed:
        assert item not in ordinary, item
        if item in hooks:
            assert hooks[item] < weight, item


# ---- image, scaling, network, monitoring ----

def test_image_tag_defaults_to_the_charts_app_version() -> None:
    app_version = chart_metadata()["appVersion"]
    for workload in workloads(render()):
        assert pod_spec(workload)["containers"][0]["image"] == f"registry.example.com/federation-broker:{app_version}"
    pinned = render({"image": {"tag": "0.2.0-rc1"}})
    assert pod_spec(pinned.one("Deployment"))["containers"][0]["image"].endswith(":0.2.0-rc1")


def test_app_version_is_the_brokers_release() -> None:
    tomllib = require_module("tomllib")
    project = tomllib.loads((CHART.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert chart_metadata()["appVersion"] == project["project"]["version"]


def test_production_scales_on_cpu_and_keeps_two_pods_through_disruptions() -> None:
    rendered = render(values_file(PRODUCTION))
    hpa = rendered.one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 70}}}]
    assert hpa["scaleTargetRef"]["name"] == rendered.one("Deployment")["metadata"]["name"]
    assert "replicas" not in rendered.one("Deployment")["spec"]  # the HPA owns it
    assert rendered.one("PodDisruptionBudget")["spec"]["minAvailable"] == 2
    assert "maxUnavailable" not in rendered.one("PodDisruptionBudget")["spec"]
    assert "cpu" in pod_spec(rendered.one("Deployment"))["containers"][0]["resources"]["requests"]


@pytest.mark.parametrize(("values", "message"), [
    ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    ({"shutdown": {"drainSeconds": "5"}}, "/shutdown/drainSeconds': got string, want integer"),
    ({"trustedProxies": "10.0.0.0/8"}, "/trustedProxies': got string, want array"),
])
def test_values_schema_refuses_a_misspelt_or_mistyped_value(values: dict[str, Any], message: str) -> None:
    """values.schema.json: helm install/upgrade/template stop with the value's path."""
    sdk = helm()
    with pytest.raises(sdk.HelmValuesError, match=re.escape(message)):
        render(values)


def test_the_disruption_budget_refuses_both_settings() -> None:
    sdk = helm()
    with pytest.raises(sdk.HelmRenderError, match="minAvailable or maxUnavailable, not both"):
        render({"podDisruptionBudget": {"minAvailable": 2, "maxUnavailable": 1}})


def test_selectors_match_the_pods(case: tuple[str, Any, Rendered]) -> None:
    _, _, rendered = case
    labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [rendered.one("Service")["spec"]["selector"], rendered.one("Deployment")["spec"]["selector"]["matchLabels"]]
    selectors += [p["spec"]["selector"]["matchLabels"] for p in rendered.all("PodDisruptionBudget")]
    selectors += [n["spec"]["podSelector"]["matchLabels"] for n in rendered.all("NetworkPolicy")]
    for selector in selectors:
        assert selector and selector.items() <= labels.items()
    # a running migration pod (no readiness probe: Ready at once) must not get the Service's traffic
    job_labels = rendered.one("Job", "-migrate")["spec"]["template"]["metadata"]["labels"]
    for selector in selectors:
        assert not selector.items() <= job_labels.items()


def test_network_policy_admits_the_ingress_controller_and_prometheus_only() -> None:
    policy = render(values_file(PRODUCTION)).one("NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    (rule,) = policy["ingress"]
    namespaces = sorted(p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"])
    assert namespaces == ["ingress-nginx", "monitoring"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    egress_ports = {(p["protocol"], p["port"]) for r in policy["egress"] for p in r["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 5432), ("TCP", 6379), ("TCP", 636), ("TCP", 443)}
    by_port = {p["port"]: [b["ipBlock"]["cidr"] for b in r["to"] if "ipBlock" in b] for r in policy["egress"]
               for p in r["ports"]}
    assert by_port[5432] == ["10.20.0.0/24"] and by_port[6379] == ["10.20.1.0/24"]


def test_service_monitor_scrapes_the_services_metrics() -> None:
    rendered = render(values_file(PRODUCTION))
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["auth"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # the operator's selector


def test_ingress_routes_to_the_service() -> None:
    rendered = render(values_file(PRODUCTION))
    ingress = rendered.one("Ingress")["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": rendered.one("Service")["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["tls"] == [{"hosts": ["broker.example.com"], "secretName": "broker-tls"}]


def test_defaults_render_no_optional_objects() -> None:
    kinds = {o["kind"] for o in render().objects}
    assert not kinds & {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "Ingress"}
