"""The Helm chart (deploy/helm) rendered by Helm's own library, and its objects checked offline.

helm-python-sdk binds libhelm_c (Helm v4's Go SDK behind a C ABI): `helm lint` and `helm
template` without a helm binary or a cluster. kubernetes-validate holds the Kubernetes JSON
schemas of each release; objects are validated strictly (no unknown fields) for KUBE_VERSION.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, require_module

CHART = ROOT / "deploy" / "helm"
PRODUCTION = CHART / "values-production.yaml"
KUBE_VERSION = "1.30"
RELEASE = "broker"
NAMESPACE = "auth"
FULLNAME = "broker-federation-broker"  # <release>-<chart name>


def helm() -> Any:
    return require_module("helm_python")


def values_file(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@dataclass
class Rendered:
    """Every object of one `helm template`, by kind."""

    objects: list[dict[str, Any]]
    notes: str

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        """The object of this kind named <release>-<chart><name_suffix>."""
        found = [o for o in self.all(kind) if o["metadata"]["name"] == FULLNAME + name_suffix]
        assert len(found) == 1, f"{kind} {FULLNAME}{name_suffix}: {[o['metadata']['name'] for o in self.all(kind)]}"
        return found[0]

    def hooks(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if "helm.sh/hook" in (o["metadata"].get("annotations") or {})]

    def not_hooks(self) -> list[dict[str, Any]]:
        return [o for o in self.objects if "helm.sh/hook" not in (o["metadata"].get("annotations") or {})]


def render(values: dict[str, Any] | None = None, *, upgrade: bool = False) -> Rendered:
    sdk = helm()
    with sdk.Chart.load(str(CHART)) as chart:
        manifests: dict[str, str] = chart.render(values, name=RELEASE, namespace=NAMESPACE,
                                                 is_install=not upgrade, is_upgrade=upgrade)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(objects, notes)


def chart_metadata() -> dict[str, Any]:
    return values_file(CHART / "Chart.yaml")


def broker_yaml(configmap: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load(configmap["data"]["broker.yaml"])
    assert isinstance(data, dict)
    return data


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


# The Prometheus Operator's ServiceMonitor is a CRD: kubernetes-validate has no schema for it.
# This is the part of the CRD's schema (monitoring.coreos.com/v1) the chart uses, closed to
# unknown fields so a misspelt one fails.
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "labels": {"type": "object",
                                                                  "additionalProperties": {"type": "string"}}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "additionalProperties": False,
                             "properties": {"matchLabels": {"type": "object",
                                                            "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False,
                                      "properties": {"any": {"type": "boolean"},
                                                     "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "interval": {"type": "string", "pattern": "^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?)$"},
                            "scheme": {"enum": ["http", "https"]},
                        },
                    },
                },
            },
        },
    },
}
