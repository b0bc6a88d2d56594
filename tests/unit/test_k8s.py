"""deploy/k8s: the Kustomize overlay renders with kubectl, and what it renders agrees with the code it
deploys (Dockerfile, settings, packaged rules, Prometheus rules, topics and ACLs)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import CI
from promql_files import RULE_FILES, run_promtool

from streamer import acls
from streamer.settings import Settings, load_settings
from streamer.topics import TopicNames

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAY = K8S / "overlays" / "example"


def kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if CI:
            pytest.fail("kubectl is required under CI")
        pytest.skip("kubectl not installed")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d is not None]


@pytest.fixture(scope="module")
def objs() -> list[dict]:
    return kustomize(OVERLAY)


def one(objs, kind: str, name: str | None = None) -> dict:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"].startswith(name))]
    assert len(found) == 1, f"{kind} {name}: {len(found)} objects"
    return found[0]


def container(objs) -> dict:
    pod = one(objs, "Deployment", "streamer-worker")["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return c


def settings_env(objs) -> dict[str, str]:
    return one(objs, "ConfigMap", "streamer-settings")["data"]


def test_base_and_overlay_render_and_every_object_is_well_formed(objs):
    assert kustomize(K8S / "base")
    kinds = sorted(o["kind"] for o in objs)
    assert {"Deployment", "ConfigMap", "PodMonitor", "PrometheusRule", "KafkaTopic", "KafkaUser"} <= set(kinds)
    for o in objs:
        assert o["apiVersion"] and o["metadata"]["name"], o
        assert o["metadata"].get("namespace") == "kafka", o["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", o["metadata"]["name"]), o["metadata"]["name"]


def test_image_and_entrypoint_match_the_dockerfile(objs):
    docker = (REPO / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", docker, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.M).group(1))
    assert entry == ["streamer"] and "streamer = \"streamer.cli:main\"" in (REPO / "pyproject.toml").read_text()
    c = container(objs)
    assert c["image"] == "ghcr.io/example/streamer:0.1.0"
    assert "command" not in c and c["args"] == cmd == ["worker"]  # the image's ENTRYPOINT runs the worker
    assert re.search(r"^USER nobody$", docker, re.M)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65534 and pod["securityContext"]["runAsNonRoot"]


def test_probes_hit_the_health_endpoints_on_the_metrics_port(objs):
    c = container(objs)
    env = settings_env(objs)
    (port,) = [p for p in c["ports"] if p["name"] == "metrics"]
    assert str(port["containerPort"]) == env["STREAMER_METRICS_PORT"]
    assert env["STREAMER_METRICS_ADDR"] == "0.0.0.0"  # kubelet and Prometheus reach the pod IP
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]


def test_settings_are_known_and_consistent(objs, monkeypatch):
    env = settings_env(objs)
    assert set(env) <= {f"STREAMER_{n.upper()}" for n in Settings.__dataclass_fields__}  # no typo is ignored
    for k in list(os.environ):
        if k.startswith("STREAMER_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = load_settings()  # validates the security combination
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username) == ("SASL_SSL", "SCRAM-SHA-512", "streamer-worker")
    assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in env)


def mounted(objs, path: str) -> dict:
    """The volume whose mount holds file ``path``, checked to provide that file name."""
    c = container(objs)
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    folder, name = str(Path(path).parent), Path(path).name
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == folder]  # a folder, not subPath
    assert "subPath" not in mount
    (vol,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    items = (vol.get("secret") or vol.get("configMap") or {}).get("items")
    if items is not None:
        assert name in {i["path"] for i in items}
    return vol


def test_rules_configmap_holds_exactly_the_packaged_default_rules(objs):
    env = settings_env(objs)
    vol = mounted(objs, env["STREAMER_RULES_FILE"])
    cm = one(objs, "ConfigMap", vol["configMap"]["name"])
    assert cm["metadata"]["name"] == "streamer-rules"  # no hash suffix: updated in place, hot-reloaded
    assert cm["data"] == {Path(env["STREAMER_RULES_FILE"]).name:
                          (REPO / "streamer" / "rules" / "default.toml").read_text()}


def test_kafka_credentials_come_from_secret_files(objs):
    env = settings_env(objs)
    user = mounted(objs, env["STREAMER_SASL_PASSWORD_FILE"])
    assert user["secret"]["secretName"] == env["STREAMER_SASL_USERNAME"]  # Strimzi: Secret named as the user
    assert user["secret"]["items"] == [{"key": "password", "path": "password"}]
    ca = mounted(objs, env["STREAMER_SSL_CAFILE"])
    assert ca["secret"]["secretName"] == "prod-kafka-cluster-ca-cert"  # Strimzi's <cluster>-cluster-ca-cert
    assert env["STREAMER_BOOTSTRAP"].startswith("prod-kafka-kafka-bootstrap.")


def test_prometheus_rule_groups_equal_the_promtool_tested_files(objs, tmp_path):
    expected = [g for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"]]
    rule = one(objs, "PrometheusRule")
    assert rule["spec"]["groups"] == expected
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    if shutil.which("promtool"):
        f = tmp_path / "from-k8s.yml"
        f.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        r = run_promtool("check", "rules", str(f))
        assert r.returncode == 0, r.stdout + r.stderr


def test_pod_monitor_scrapes_the_worker_as_the_job_the_alerts_expect(objs):
    pm = one(objs, "PodMonitor")
    dep = one(objs, "Deployment")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    job = labels[pm["spec"]["jobLabel"]]
    rules_text = "".join(f.read_text() for f in RULE_FILES)
    assert f'job="{job}"' in rules_text
    assert {e["port"] for e in pm["spec"]["podMetricsEndpoints"]} == {"metrics"}


def test_kafka_topics_are_the_contract_and_replicas_fit_the_partitions(objs):
    names = TopicNames("")
    state = acls.state_topic(names)
    topics = {t["spec"]["topicName"]: t for t in objs if t["kind"] == "KafkaTopic"}
    assert set(topics) == set(names.all()) | {state}
    assert topics[state]["spec"]["config"]["cleanup.policy"] == "compact"
    for t in topics.values():
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == "prod-kafka"
    replicas = one(objs, "Deployment")["spec"]["replicas"]
    assert 1 <= replicas <= min(topics[t]["spec"]["partitions"] for t in names.inputs())


def _acl_set(user: dict) -> set[tuple[str, str, str]]:
    out = set()
    for a in user["spec"]["authorization"]["acls"]:
        assert a["resource"]["patternType"] == "literal" and a.get("type", "allow") == "allow"
        out |= {(a["resource"]["type"], a["resource"]["name"], op) for op in a["operations"]}
    return out


def test_kafka_users_have_the_acls_of_the_secured_broker(objs):
    users = {u["metadata"]["name"]: u for u in objs if u["kind"] == "KafkaUser"}
    assert set(users) == {"streamer-worker", "streamer-simulator"}
    for name, spec in (("streamer-worker", acls.worker_acls("", "streamer-worker")),
                       ("streamer-simulator", acls.simulator_acls("", "streamer-simulator"))):
        assert users[name]["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert _acl_set(users[name]) == {(a.resource_type, a.name, a.operation) for a in spec}
    names = TopicNames("")
    worker = _acl_set(users["streamer-worker"])
    assert not {(t, op) for _, t, op in worker if op == "Write"} & {(t, "Write") for t in names.inputs()}
    assert ("group", acls.worker_group(names), "Read") in worker
    topics = {t["spec"]["topicName"] for t in objs if t["kind"] == "KafkaTopic"}
    assert {n for rt, n, _ in worker if rt == "topic"} <= topics


def test_generated_files_are_up_to_date():
    spec = importlib.util.spec_from_file_location("k8s_sync", K8S / "sync.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    base = K8S / "base"
    hint = "run .venv/bin/python deploy/k8s/sync.py"
    assert (base / "rules" / "default.toml").read_bytes() == (REPO / "streamer/rules/default.toml").read_bytes(), hint
    assert (base / "prometheusrule.yaml").read_text() == sync._dump([sync.prometheus_rule()],
                                                                    "deploy/prometheus/rules/*.yml"), hint
    assert (base / "kafkatopics.yaml").read_text() == sync._dump(sync.kafka_topics(), "streamer/topics.py"), hint
    users = [sync.kafka_user("streamer-worker", acls.worker_acls("", "streamer-worker")),
             sync.kafka_user("streamer-simulator", acls.simulator_acls("", "streamer-simulator"))]
    assert (base / "kafkausers.yaml").read_text() == sync._dump(users, "streamer/acls.py"), hint
