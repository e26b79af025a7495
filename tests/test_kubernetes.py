"""deploy/kubernetes/, offline: no cluster, no network.

Every built-in kind is validated against Kubernetes' own schemas (kubernetes-validate
ships them), strictly (an unknown field is an error), for the oldest Kubernetes the
README claims and the newest the package knows. KEDA's ScaledObject is a CRD that
package does not know: its fields are checked against the schema below, written from
KEDA's ScaledObject reference for the fields these manifests use. Then the properties
the deployment rests on, on the base as written and on the example overlay as
`kubectl kustomize` renders it (kubectl is skipped when absent, except in CI).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import redis
import yaml
from kubernetes_validate.utils import latest_version

from agentjobs import catalog
from agentjobs.agents.tool import TOOLS_QUEUE
from agentjobs.cli.worker import TOOLS, worker_argv
from agentjobs.contrib.testing import free_port, wait_for
from agentjobs.contrib.testing import http_get as _get
from agentjobs.ops import depth, metrics
from agentjobs.ops.metric_specs import exported_series
from agentjobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes deploy/kubernetes/README.md says the manifests run on.
OLDEST_K8S = "1.30"
#: Environment variables that hold a credential: only ever from a Secret.
SECRET_ENV = {
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "AGENTJOBS_BROKER_URL",
    "AGENTJOBS_REDIS_URL",
    "AGENTJOBS_RESULT_BACKEND",
    "AGENTJOBS_FLOWER_BASIC_AUTH",
    "AGENTJOBS_CONSOLE_BASIC_AUTH",
    "AGENTJOBS_SESSION_STORE",
}
#: The Secrets the pods reference and the README tells the operator to create.
SECRETS = {
    "agentjobs-redis",
    "agentjobs-anthropic",
    "agentjobs-flower",
    "agentjobs-console",
    "agentjobs-sessions",
}
#: The Secret KEDA reads the broker's address and password from (the tools worker).
KEDA_SECRET = "agentjobs-keda-redis"
#: The ConfigMap's one key that is not an agentjobs setting: the workers' -I modules.
AGENT_MODULES = "AGENT_MODULES"
TOOLS_DIR = K8S / "components" / "tools-worker"
_QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}

#: KEDA's ScaledObject (keda.sh/v1alpha1, KEDA >= 2.17: fallback.behavior), the fields
#: these manifests use, with KEDA's required ones; any other field is an error here,
#: since KEDA's API server would prune a misspelt one without a word.
SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "fallback": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["failureThreshold", "replicas"],
                    "properties": {
                        "failureThreshold": {"type": "integer", "minimum": 0},
                        "replicas": {"type": "integer", "minimum": 0},
                        "behavior": {
                            "enum": [
                                "static",
                                "currentReplicas",
                                "currentReplicasIfHigher",
                                "currentReplicasIfLower",
                            ]
                        },
                    },
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                # autoscaling/v2 HorizontalPodAutoscalerBehavior, checked
                                # below against Kubernetes' own schema
                                "behavior": {"type": "object"},
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            # KEDA's trigger metadata is a map of strings
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {}},
                                "additionalProperties": False,
                            },
                        },
                    },
                },
            },
        },
    },
}

#: The prometheus trigger's metadata (KEDA's scaler reference): required, and known.
PROMETHEUS_REQUIRED = {"serverAddress", "query", "threshold"}
PROMETHEUS_KNOWN = PROMETHEUS_REQUIRED | {
    "activationThreshold",
    "namespace",
    "ignoreNullValues",
    "unsafeSsl",
    "timeout",
    "customHeaders",
    "queryParameters",
}


#: The redis trigger's metadata (KEDA's "Redis Lists" scaler), the broker's address and
#: password coming from a TriggerAuthentication.
REDIS_REQUIRED = {"listName", "listLength"}
REDIS_KNOWN = REDIS_REQUIRED | {"activationListLength", "databaseIndex", "enableTLS", "unsafeSsl"}

#: KEDA's TriggerAuthentication (keda.sh/v1alpha1), secretTargetRef only.
TRIGGER_AUTHENTICATION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": SCALED_OBJECT["properties"]["metadata"],
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["secretTargetRef"],
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["parameter", "name", "key"],
                        "properties": {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                }
            },
        },
    },
}


def load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(folder: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return doc


def files_of(folder: Path) -> list[dict[str, Any]]:
    """The resources a kustomization lists, as written (no kustomize involved)."""
    docs = []
    for res in kustomization(folder)["resources"]:
        assert (folder / res).is_file(), f"{folder}: {res} is not a file of its own"
        docs += load(folder / res)
    return docs


def kubectl_kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl not installed: CI must render the overlays")
        pytest.skip("kubectl not installed (renders the kustomize overlays)")
    out = subprocess.run(
        [kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(params=["base", "overlays/example"])
def docs(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The base as written, and the example overlay as kustomize renders it."""
    if request.param == "base":
        return files_of(K8S / "base")
    return kubectl_kustomize(K8S / request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    return c


def all_workers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Worker Deployments by the family (or ``tools``) their command serves."""
    found = {}
    for d in of_kind(docs, "Deployment"):
        cmd = container(d)["command"]
        if cmd[:2] == ["agentjobs", "worker"]:
            assert cmd[2] not in found, cmd
            found[cmd[2]] = d
    return found


def workers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The model families' worker Deployments."""
    return {f: d for f, d in all_workers(docs).items() if f != TOOLS}


def model_scalers(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ScaledObjects of the model workers (on the exporter's metrics)."""
    return [
        so
        for so in of_kind(docs, "ScaledObject")
        if so["spec"]["triggers"][0]["type"] == "prometheus"
    ]


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = named(docs, "ConfigMap", "agentjobs-config")["data"]
    return data


def settings_of(docs: list[dict[str, Any]]) -> Settings:
    """agentjobs' settings as the ConfigMap makes them (defaults for the rest)."""
    given = {k: v for k, v in config(docs).items() if k.startswith("AGENTJOBS_")}
    return Settings(**{k.removeprefix("AGENTJOBS_").lower(): v for k, v in given.items()})


def largest_max_tokens() -> int:
    """The largest max_tokens a request may ask for: the catalog's largest output."""
    return max(m.max_output_tokens for m in catalog.models().values())


def longest_task_s(s: Settings, max_tokens: int | None = None) -> float:
    """The longest a running task takes at ``max_tokens`` (default: the largest a
    request may ask for): the wait for an identical call in flight, for another copy's
    lease, for the limiter, then its own call, bounded by ``Settings.call_timeout_s``."""
    tokens = largest_max_tokens() if max_tokens is None else max_tokens
    return s.cache_wait_s + s.idempotency_wait_s + s.limiter_max_sleep_s + s.call_timeout_s(tokens)


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def threads(deployment: dict[str, Any]) -> int:
    return int(option(container(deployment)["command"], "-c"))


def port_number(c: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (p,) = [p for p in c["ports"] if p["name"] == port]
    return int(p["containerPort"])


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] == "TriggerAuthentication":
        jsonschema.validate(doc, TRIGGER_AUTHENTICATION)
        return
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALED_OBJECT)
        behavior = doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
        if "behavior" in behavior:  # KEDA hands it to the HPA as it is
            hpa = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "x"},
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "x"},
                    "maxReplicas": 1,
                    "behavior": behavior["behavior"],
                },
            }
            for version in (OLDEST_K8S, latest_version()):
                kubernetes_validate.validate(hpa, version, strict=True)
        return
    for version in (OLDEST_K8S, latest_version()):
        # SchemaNotFoundError for a kind it does not know fails the test too
        kubernetes_validate.validate(doc, version, strict=True)


def test_every_manifest_validates_against_its_schema(docs: list[dict[str, Any]]) -> None:
    assert {d["kind"] for d in docs} >= {
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ScaledObject",
    }
    for doc in docs:
        validate(doc)


def test_the_validators_catch_a_misspelt_field() -> None:
    """The strict schemas refuse what a cluster would silently drop."""
    docs = files_of(K8S / "base")
    deployment = copy.deepcopy(workers(docs)["haiku"])
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSecond"] = 300
    with pytest.raises(jsonschema.ValidationError, match="terminationGracePeriodSecond"):
        validate(deployment)
    scaled = copy.deepcopy(of_kind(docs, "ScaledObject")[0])
    scaled["spec"]["maxReplicas"] = 4
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        validate(scaled)
    scaled = copy.deepcopy(of_kind(docs, "ScaledObject")[0])
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 24
    with pytest.raises(jsonschema.ValidationError, match="24"):
        validate(scaled)


def test_a_worker_deployment_per_model_family(docs: list[dict[str, Any]]) -> None:
    found = workers(docs)
    assert set(found) == set(catalog.FAMILIES)
    s = settings_of(docs)
    for family, d in found.items():
        cmd = container(d)["command"]
        assert cmd[:3] == ["agentjobs", "worker", family]
        # its queue is the family's, the pool threads, the name FAMILY@%h
        argv = worker_argv(family, cmd[3:])
        assert option(argv, "-Q") == catalog.queue_for(family)
        assert option(argv, "-P") == "threads" and option(argv, "-n") == f"{family}@%h"
        # threads beyond the process's HTTP pool would only wait for a connection
        assert 1 <= threads(d) <= s.http_max_connections, (family, threads(d))
        # KEDA owns the count: a replicas field would reset it on every apply
        assert "replicas" not in d["spec"], family
    # every worker, tools too, loads the modules of the ConfigMap's AGENT_MODULES (-I;
    # Kubernetes expands $(VAR) from the container's environment, the ConfigMap's here)
    for family, d in all_workers(docs).items():
        c = container(d)
        assert option(c["command"], "-I") == f"$({AGENT_MODULES})", family
        assert {"configMapRef": {"name": "agentjobs-config"}} in c["envFrom"], family
    assert config(docs)[AGENT_MODULES]


def test_workers_get_time_to_finish_their_calls_when_stopped(docs: list[dict[str, Any]]) -> None:
    configured = settings_of(docs)
    for family, d in workers(docs).items():
        pod = d["spec"]["template"]["spec"]
        grace = pod["terminationGracePeriodSeconds"]
        env = {e["name"] for e in container(d).get("env", [])}
        # Kubernetes stops a pod with SIGTERM: Celery's warm shutdown, running calls
        # finish; and a stop escalated to cold (SIGQUIT) adds at most the soft shutdown
        assert "REMAP_SIGTERM" not in env and "lifecycle" not in container(d), family
        # the longest task is at the largest max_tokens a request may ask for (an agent
        # step cut inside a tool_use asks again with up to the model's maximum)
        for s in (configured, Settings()):
            assert grace > s.soft_shutdown_s + longest_task_s(s), (family, grace)
        # and close to it: a bound, not a guess
        assert grace < Settings().soft_shutdown_s + longest_task_s(Settings()) + 300, family


def test_every_worker_has_a_disruption_budget(docs: list[dict[str, Any]]) -> None:
    budgets = of_kind(docs, "PodDisruptionBudget")
    deployments = of_kind(docs, "Deployment")
    for family, d in all_workers(docs).items():
        labels = d["spec"]["template"]["metadata"]["labels"]
        mine = [
            b
            for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            and b["metadata"].get("namespace") == d["metadata"].get("namespace")
        ]
        assert len(mine) == 1, (family, [b["metadata"]["name"] for b in mine])
        (budget,) = mine
        # one pod at a time, at any replica count (minAvailable: 1 would block every
        # drain of a single-replica worker)
        assert budget["spec"] == {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": d["spec"]["selector"]["matchLabels"]},
        }, family
        # and it covers no other Deployment's pods
        for other in deployments:
            if other is not d:
                theirs = other["spec"]["template"]["metadata"]["labels"]
                assert not budget["spec"]["selector"]["matchLabels"].items() <= theirs.items()


def test_secrets_are_referenced_never_inlined(docs: list[dict[str, Any]]) -> None:
    assert not of_kind(docs, "Secret")
    text = yaml.safe_dump_all(docs)
    assert not re.search(r"sk-ant-|://[^/\s:@]*:[^/\s@]+@", text), "a credential in the manifests"
    assert not SECRET_ENV & set(config(docs)), "a credential in the ConfigMap"
    referenced = set()
    for d in of_kind(docs, "Deployment"):
        c = container(d)
        name = d["metadata"]["name"]
        for e in c.get("env", []):
            if e["name"] in SECRET_ENV:
                assert "value" not in e, (name, e["name"])
                referenced.add(e["valueFrom"]["secretKeyRef"]["name"])
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                referenced.add(src["secretRef"]["name"])
        # every agentjobs pod reaches Redis through the URL Secret
        assert {"secretRef": {"name": "agentjobs-redis"}} in c["envFrom"], name
        assert {"configMapRef": {"name": "agentjobs-config"}} in c["envFrom"], name

    def secret_env(d: dict[str, Any], var: str) -> dict[str, Any]:
        (e,) = [e for e in container(d)["env"] if e["name"] == var]
        ref: dict[str, Any] = e["valueFrom"]["secretKeyRef"]
        return ref

    console = named(docs, "Deployment", "agentjobs-console")
    for family, d in all_workers(docs).items():
        ref = secret_env(d, "ANTHROPIC_API_KEY")
        assert ref == {"name": "agentjobs-anthropic", "key": "ANTHROPIC_API_KEY"}, family
    # the session store's URL (it holds a password) wherever records are read or
    # written, optional: without the Secret the records stay in the state store
    for d in (*all_workers(docs).values(), console):
        assert secret_env(d, "AGENTJOBS_SESSION_STORE") == {
            "name": "agentjobs-sessions",
            "key": "AGENTJOBS_SESSION_STORE",
            "optional": True,
        }, d["metadata"]["name"]
    flower = named(docs, "Deployment", "agentjobs-flower")
    assert secret_env(flower, "AGENTJOBS_FLOWER_BASIC_AUTH")["name"] == "agentjobs-flower"
    assert secret_env(console, "AGENTJOBS_CONSOLE_BASIC_AUTH") == {
        "name": "agentjobs-console",
        "key": "AGENTJOBS_CONSOLE_BASIC_AUTH",
    }
    # only the session store's Secret may be missing
    for d in of_kind(docs, "Deployment"):
        for e in container(d).get("env", []):
            if e["valueFrom"]["secretKeyRef"].get("optional"):
                assert e["name"] == "AGENTJOBS_SESSION_STORE", (d["metadata"]["name"], e)
    assert referenced == SECRETS
    # KEDA's, for the tools worker's list, through a TriggerAuthentication
    keda = {
        ref["name"]
        for ta in of_kind(docs, "TriggerAuthentication")
        for ref in ta["spec"]["secretTargetRef"]
    }
    assert keda <= {KEDA_SECRET}
    readme = (K8S / "README.md").read_text()
    for secret in (*SECRETS, KEDA_SECRET):
        assert re.search(rf"kubectl -n agentjobs create secret generic {secret} ", readme), secret


def test_the_config_map_holds_agentjobs_settings_that_load(docs: list[dict[str, Any]]) -> None:
    fields = {f"AGENTJOBS_{name.upper()}" for name in Settings.model_fields}
    data = config(docs)
    assert set(data) - {AGENT_MODULES} <= fields, set(data) - fields
    assert all(isinstance(v, str) for v in data.values())
    settings_of(docs)  # a bad value would raise here as it would stop every pod


def compose_services() -> dict[str, Any]:
    """docker-compose.yml's services ($$ is compose's escaped $; nothing else needed)."""
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc["services"]


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)s", text)
    assert m, text
    return int(m.group(1))


def test_commands_and_probes_are_the_compose_stack_s(docs: list[dict[str, Any]]) -> None:
    """tests/test_deploy.py runs the compose commands and healthchecks for real; these
    are the same ones."""
    services = compose_services()
    for family, d in workers(docs).items():
        c = container(d)
        # compose runs Haiku and Sonnet workers; Opus is the same but for the name
        svc = services[f"worker-{family if family != 'opus' else 'haiku'}"]
        test = svc["healthcheck"]["test"][1].replace("$$", "$")
        if family == "opus":
            test = test.replace("haiku@", "opus@")
        assert f"-d {family}@$HOSTNAME" in test
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"] == ["sh", "-c", test], (family, probe)
            assert c[probe]["timeoutSeconds"] == _seconds(svc["healthcheck"]["timeout"])
        # the name the probe pings: no -n, so FAMILY@%h (%h: the pod's hostname)
        assert "-n" not in c["command"] and "--hostname" not in c["command"]
        compose_cmd = shlex.split(svc["command"].replace("haiku", family))
        assert c["command"][:3] == compose_cmd[:3] and "-l" in c["command"]
        # the same -I modules, by default agentjobs' own task module (a no-op)
        default = re.fullmatch(r"\$\{AGENT_MODULES:-([\w.,]+)\}", option(compose_cmd, "-I"))
        assert default and config(docs)[AGENT_MODULES] == default.group(1), family
    console = container(named(docs, "Deployment", "agentjobs-console"))
    assert console["command"] == shlex.split(services["console"]["command"])
    # compose connects to the console's port; so do both probes (a GET needs the password)
    (port,) = re.findall(r"'127\.0\.0\.1', (\d+)", services["console"]["healthcheck"]["test"][-1])
    for probe in ("readinessProbe", "livenessProbe"):
        assert port_number(console, console[probe]["tcpSocket"]["port"]) == int(port), probe
        assert console[probe]["timeoutSeconds"] == _seconds(
            services["console"]["healthcheck"]["timeout"]
        )
    for name, port in (("flower", 5555), ("exporter", 9808)):
        svc = services[name]
        c = container(named(docs, "Deployment", f"agentjobs-{name}"))
        assert c["command"] == shlex.split(svc["command"]), name
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(svc["healthcheck"]["test"]))
        assert url, name
        probe = c["readinessProbe"]
        assert probe["httpGet"]["path"] == url.group(2), name
        assert port_number(c, probe["httpGet"]["port"]) == int(url.group(1)) == port, name
        assert probe["timeoutSeconds"] == _seconds(svc["healthcheck"]["timeout"]), name
        live = c["livenessProbe"]
        live_port = live.get("httpGet", live.get("tcpSocket"))["port"]
        assert port_number(c, live_port) == port, name


def test_exporter_and_flower_services(docs: list[dict[str, Any]]) -> None:
    for name, port, path in (("exporter", 9808, "/metrics"), ("flower", 5555, "/metrics")):
        d = named(docs, "Deployment", f"agentjobs-{name}")
        c = container(d)
        cmd = c["command"]
        # they listen on 127.0.0.1 unless told: other pods must reach them
        assert option(cmd, "--address") == "0.0.0.0" and int(option(cmd, "--port")) == port
        # one replica: two exporters would be scraped twice and every sum doubled
        assert d["spec"]["replicas"] == 1, name
        svc = named(docs, "Service", f"agentjobs-{name}")
        assert (
            svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        )
        (sp,) = svc["spec"]["ports"]
        assert port_number(c, sp["targetPort"]) == port and sp["port"] == port
        assert svc["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": path,
        }
        # scraped once: by the Service's annotations, not the pods' too
        assert "annotations" not in d["spec"]["template"]["metadata"], name


def test_pods_run_unprivileged_without_service_links(docs: list[dict[str, Any]]) -> None:
    for d in of_kind(docs, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        name = d["metadata"]["name"]
        # service links would put AGENTJOBS_EXPORTER_PORT=tcp://... and the like into
        # the environment agentjobs reads its settings from
        assert pod["enableServiceLinks"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name  # the Dockerfile's user
        sc = container(d)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        if sc.get("readOnlyRootFilesystem"):
            assert {"name": "tmp", "mountPath": "/tmp"} in container(d)["volumeMounts"], name
    assert "USER agentjobs" in (ROOT / "Dockerfile").read_text()
    assert "--uid 10001" in (ROOT / "Dockerfile").read_text()


_SELECTOR = re.compile(r"\b(agentjobs_[a-z_]+)\{([^}]*)\}")


def test_keda_scales_each_claude_queue_on_its_work(docs: list[dict[str, Any]]) -> None:
    found = workers(docs)
    series = exported_series()
    s = settings_of(docs)
    scaled: dict[str, str] = {}
    for so in model_scalers(docs):
        spec = so["spec"]
        target = named(docs, "Deployment", spec["scaleTargetRef"]["name"])
        (family,) = [f for f, d in found.items() if d is target]
        served = option(worker_argv(family, container(target)["command"][3:]), "-Q")
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus" and trigger.get("metricType") == "AverageValue"
        meta = trigger["metadata"]
        assert PROMETHEUS_REQUIRED <= set(meta) <= PROMETHEUS_KNOWN, set(meta)
        assert re.fullmatch(r"https?://[\w.-]+(:\d+)?", meta["serverAddress"]), meta
        # an empty answer (the exporter down) is a failure, so the fallback runs: read as
        # 0 (KEDA's default) it would scale to the minimum under a growing backlog
        # (test_the_scaling_queries_against_prometheus_and_the_exporter runs it)
        assert meta["ignoreNullValues"] == "false", family
        assert not re.search(r"agentjobs_queue_depth\{[^}]*\}\)\s*or\b", meta["query"]), meta
        # the queue it scales on is the one its Deployment consumes, in every selector
        used = _SELECTOR.findall(meta["query"])
        assert {name for name, _ in used} == {
            "agentjobs_queue_depth",
            "agentjobs_calls_in_flight",
        }, meta["query"]
        for name, inner in used:
            matchers = dict(re.findall(r'(\w+)="([^"]*)"', inner))
            assert set(matchers) <= series[name], (name, matchers)
            assert matchers == {"queue": served}, (family, matchers)
        assert served not in scaled, served
        scaled[served] = family
        # the work per pod is below its threads (headroom), and the bounds fit the
        # global limits: a pod past the group's concurrency cap would only wait
        per_pod = float(meta["threshold"])
        assert 0 < per_pod < threads(target), family
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], family
        limit = s.limits(family).concurrency
        assert (spec["maxReplicaCount"] - 1) * per_pod < limit, (family, limit)
        assert spec["fallback"]["replicas"] <= spec["maxReplicaCount"], family
    # one per queue agentjobs routes to: the catalog's, which the exporter reports
    assert set(scaled) == {catalog.queue_for(f) for f in catalog.FAMILIES}
    # (the exporter watches agentjobs.tools too: its worker scales on the list itself)
    assert set(scaled) == set(depth.known_queues()) - {depth.TOOLS_QUEUE}


def test_replica_bounds_follow_from_the_tier(docs: list[dict[str, Any]]) -> None:
    """maxReplicaCount is Little's law for the tier in the ConfigMap: calls in flight =
    RPM / 60 x call latency (the latency assumed is the ScaledObject's annotation), up
    to the group's concurrency cap, over the work per pod."""
    s = settings_of(docs)
    for so in model_scalers(docs):
        family = so["metadata"]["name"].removeprefix("agentjobs-worker-")
        latency = float(so["metadata"]["annotations"]["agentjobs.sizing/call-latency-seconds"])
        limits = s.limits(family)
        in_flight = min(limits.rpm / 60 * latency, limits.concurrency)
        per_pod = float(so["spec"]["triggers"][0]["metadata"]["threshold"])
        want = math.ceil(round(in_flight / per_pod, 6))
        assert so["spec"]["maxReplicaCount"] == want, (family, want)


def test_promtool_parses_the_scaling_queries(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    rules = [
        {"record": f"scaling_query_{i}", "expr": so["spec"]["triggers"][0]["metadata"]["query"]}
        for i, so in enumerate(model_scalers(docs))
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "keda", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(rules)} rules found" in out.stdout + out.stderr


def _prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus not installed: CI must run the scaling queries")
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    return found


def keda_reads(prom: str, meta: dict[str, str]) -> float | None:
    """What KEDA's prometheus scaler makes of its query's answer now: the value, or None
    where it counts a failure (KEDA's ExecutePromQuery: more than one element always;
    no element unless ignoreNullValues, which reads it as 0)."""
    status, body = _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": meta["query"]}))
    assert status == 200, body
    result = json.loads(body)["data"]["result"]
    assert len(result) <= 1, result  # KEDA: "returned multiple elements"
    if not result:
        return 0.0 if meta.get("ignoreNullValues", "true") == "true" else None
    return float(result[0]["value"][1])


def test_the_scaling_queries_against_prometheus_and_the_exporter(
    redis_server: Any, state_redis: Any, purge_queues: None, tmp_path: Path
) -> None:
    """Each ScaledObject's query, asked of a real Prometheus scraping the real exporter
    (as a Kubernetes job name would, not compose's): waiting messages, priority sub-lists
    included, plus calls in flight; then the exporter stopped, an answer KEDA counts as a
    failure (so it runs fallback.replicas), and the alert rules see it."""
    from agentjobs import complete
    from agentjobs.contrib.pytest_plugin import purge

    prometheus = _prometheus_binary()
    scalers = {
        so["metadata"]["name"].removeprefix("agentjobs-worker-"): so["spec"]["triggers"][0]
        for so in model_scalers(files_of(K8S / "base"))
    }
    assert set(scalers) == set(catalog.FAMILIES)
    # Sonnet: 5 waiting and 3 more with a priority (kombu's sub-list claude.sonnet\x06\x166)
    for i in range(5):
        complete.apply_async(kwargs={"prompt": f"waiting {i}", "model": "sonnet"})
    for i in range(3):
        complete.apply_async(kwargs={"prompt": f"urgent {i}", "model": "sonnet"}, priority=6)
    # Haiku: 2 calls under way, marked as a worker marks them
    haiku = catalog.resolve("haiku").id
    calls = [f"kube-test-{i}" for i in range(2)]
    for call in calls:
        metrics.call_started(call, catalog.queue_for("haiku"), haiku)
    want = {"sonnet": 8.0, "haiku": 2.0, "opus": 0.0}

    exporter_port, prom_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ROOT / "deploy" / "prometheus" / "alerts.yml")],
                "scrape_configs": [
                    {
                        "job_name": "kubernetes-service-endpoints",
                        "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
                    }
                ],
            }
        )
    )
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("exporter", "prometheus")}
    argv = [sys.executable, "-m", "agentjobs", "exporter", "--port", str(exporter_port)]
    procs = {
        "exporter": subprocess.Popen(argv, stdout=logs["exporter"], stderr=subprocess.STDOUT),
        "prometheus": subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=logs["prometheus"],
            stderr=subprocess.STDOUT,
        ),
    }
    prom = f"http://127.0.0.1:{prom_port}"

    def alive(name: str) -> bool:
        if procs[name].poll() is not None:
            raise AssertionError((tmp_path / f"{name}.log").read_text()[-3000:])
        return True

    def values() -> dict[str, float | None]:
        alive("prometheus")
        return {f: keda_reads(prom, trigger["metadata"]) for f, trigger in scalers.items()}

    def alerts() -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        for a in json.loads(_get(prom + "/api/v1/alerts")[1])["data"]["alerts"]:
            found.setdefault(a["labels"]["alertname"], []).append(a["labels"])
        return found

    try:
        wait_for(lambda: alive("prometheus") and _get(prom + "/-/ready")[0] == 200, 60)
        # what KEDA divides by each threshold: waiting plus in flight, per family
        assert wait_for(lambda: alive("exporter") and values() == want, 60, what="scraped")
        # the rules see a queue with messages and no worker (claude.sonnet), exporter up
        firing = wait_for(lambda: "AgentJobsNoWorker" in alerts() and alerts(), 30, what="NoWorker")
        assert {a["queue"] for a in firing["AgentJobsNoWorker"]} == {"claude.sonnet"}
        assert "AgentJobsExporterDown" not in firing
        # the exporter stops: its series go stale at the next failed scrape, and every
        # query answers nothing, which KEDA counts as a failure (not 0 work)
        procs["exporter"].terminate()
        procs["exporter"].wait(30)
        down = {f: None for f in scalers}
        wait_for(lambda: values() == down, 30, what="stale series")
        pending = wait_for(
            lambda: "AgentJobsExporterDown" in alerts() and alerts(), 30, what="ExporterDown"
        )
        assert pending["AgentJobsExporterDown"] == [
            {"alertname": "AgentJobsExporterDown", "severity": "critical"}
        ]
    finally:
        for call in calls:
            metrics.call_finished(call, catalog.queue_for("haiku"), haiku)
        purge([TOOLS_QUEUE])
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()


def test_the_tools_scaler_reads_the_list_tool_calls_are_sent_to(
    redis_server: Any, purge_queues: None
) -> None:
    """KEDA's redis trigger reads one list by its name (LLEN); a tool call is sent
    without a priority, so it is on the list named for the queue itself, not on one of
    kombu's priority sub-lists, which the trigger would not count."""
    from agentjobs.agents.dispatch import send_tool
    from agentjobs.contrib.pytest_plugin import purge

    (so,) = [
        s
        for s in of_kind(files_of(TOOLS_DIR), "ScaledObject")
        if s["spec"]["triggers"][0]["type"] == "redis"
    ]
    list_name = so["spec"]["triggers"][0]["metadata"]["listName"]
    broker = redis.Redis.from_url(os.environ["AGENTJOBS_BROKER_URL"])
    purge([TOOLS_QUEUE])
    try:
        for n in range(3):
            send_tool("kube-session", n, f"toolu_{n}", "lookup", TOOLS_QUEUE)
        assert broker.llen(list_name) == 3
        lists = {k for k in broker.keys(TOOLS_QUEUE + "*") if broker.type(k) == b"list"}
        assert lists == {list_name.encode()}
    finally:
        purge([TOOLS_QUEUE])
        broker.close()


def test_the_example_overlay_sets_a_tier_a_budget_an_image_and_a_namespace() -> None:
    docs = kubectl_kustomize(K8S / "overlays" / "example")
    s = settings_of(docs)
    for family in catalog.FAMILIES:  # the Build tier
        assert (s.limits(family).rpm, s.limits(family).otpm) == (5_000, 1_000_000)
    assert s.budget_daily_usd == 500
    for d in of_kind(docs, "Deployment"):
        assert container(d)["image"] == "registry.example.com/agentjobs:0.1.0"
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == "agentjobs", d["metadata"]["name"]
    for so in model_scalers(docs):
        address = so["spec"]["triggers"][0]["metadata"]["serverAddress"]
        assert address == "http://prometheus-operated.monitoring.svc:9090"


def tools_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools worker's resources: the component's files as written, or the overlay's."""
    return docs if TOOLS in all_workers(docs) else files_of(TOOLS_DIR)


@pytest.fixture(params=["component", "overlays/example"])
def tools(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The tools component as written (with the base's ConfigMap), and as the example
    overlay renders it."""
    if request.param == "component":
        return files_of(K8S / "base") + files_of(TOOLS_DIR)
    return kubectl_kustomize(K8S / request.param)


def test_the_tools_worker_serves_agentjobs_tools_and_scales_on_its_list(
    tools: list[dict[str, Any]],
) -> None:
    assert kustomization(TOOLS_DIR)["kind"] == "Component"
    for doc in tools:
        validate(doc)
    d = all_workers(tools)[TOOLS]
    c = container(d)
    # the command serves agentjobs.tools with the threads pool, as tools@%h
    argv = worker_argv(TOOLS, c["command"][3:])
    assert option(argv, "-Q") == TOOLS_QUEUE and option(argv, "-P") == "threads"
    assert option(argv, "-n") == f"{TOOLS}@%h"
    for probe in ("readinessProbe", "livenessProbe"):
        assert f"-d {TOOLS}@$HOSTNAME" in c[probe]["exec"]["command"][-1], probe
    assert "replicas" not in d["spec"]  # KEDA owns the count
    # its ScaledObject reads the length of the list the worker consumes, in the broker
    (so,) = [
        s
        for s in of_kind(tools, "ScaledObject")
        if s["spec"]["scaleTargetRef"]["name"] == d["metadata"]["name"]
    ]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "redis" and trigger.get("metricType") == "AverageValue"
    meta = trigger["metadata"]
    assert REDIS_REQUIRED <= set(meta) <= REDIS_KNOWN, set(meta)
    assert meta["listName"] == option(argv, "-Q")
    per_pod = int(meta["listLength"])
    assert 0 < per_pod < threads(d)
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    assert so["spec"]["fallback"]["replicas"] <= so["spec"]["maxReplicaCount"]
    # the broker's database, as the URL the README has the operator put in the Secret
    readme = (K8S / "README.md").read_text()
    (db,) = re.findall(r"AGENTJOBS_BROKER_URL='redis://[^']*/(\d+)'", readme)
    assert meta["databaseIndex"] == db
    # the address and password from the TriggerAuthentication it names
    auth = named(tools, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) == {"address", "password"}
    assert {r["name"] for r in refs.values()} == {KEDA_SECRET}
    for param, ref in refs.items():
        assert re.search(rf"--from-literal={ref['key']}=", readme), param
    # a drain takes one pod at a time, as the model workers
    (budget,) = [
        b
        for b in of_kind(tools, "PodDisruptionBudget")
        if b["spec"]["selector"]["matchLabels"] == d["spec"]["selector"]["matchLabels"]
    ]
    assert budget["spec"]["maxUnavailable"] == 1
    # its grace: above the soft shutdown plus the longest tool the annotation promises
    # (a tool call takes no lease wait: wait_s=0)
    longest_tool = float(d["metadata"]["annotations"]["agentjobs.sizing/longest-tool-seconds"])
    grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    for s in (settings_of(tools), Settings()):
        assert grace > s.soft_shutdown_s + longest_tool, grace
    # the same environment as the model workers'
    haiku = workers(tools)["haiku"]
    assert c["envFrom"] == container(haiku)["envFrom"]
    assert c["env"] == container(haiku)["env"]


def test_the_tools_component_composes_with_the_base(tmp_path: Path) -> None:
    """The base alone runs no tools worker; an overlay of the base plus the component
    does (a throwaway one here; overlays/example is another)."""
    assert TOOLS not in all_workers(files_of(K8S / "base"))
    overlay = tmp_path / "with-tools"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "base", overlay)],
                "components": [os.path.relpath(TOOLS_DIR, overlay)],
            }
        )
    )
    rendered = kubectl_kustomize(overlay)
    assert set(all_workers(rendered)) == {*catalog.FAMILIES, TOOLS}
    listed = kustomization(K8S / "overlays" / "example").get("components") or []
    assert any(Path(c).name == TOOLS_DIR.name for c in listed)


def test_the_console_service(docs: list[dict[str, Any]]) -> None:
    d = named(docs, "Deployment", "agentjobs-console")
    c = container(d)
    cmd = c["command"]
    assert cmd[:2] == ["agentjobs", "console"]
    # off loopback it needs the password (Secret agentjobs-console), which it has
    assert option(cmd, "--address") == "0.0.0.0" and "--no-auth" not in cmd
    port = int(option(cmd, "--port"))
    # one replica: the CSRF secret is per process, a form from one would fail on another
    assert d["spec"]["replicas"] == 1
    svc = named(docs, "Service", "agentjobs-console")
    assert svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    (sp,) = svc["spec"]["ports"]
    assert port_number(c, sp["targetPort"]) == port == sp["port"]
    assert "annotations" not in svc["metadata"]  # nothing to scrape
