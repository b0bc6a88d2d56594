"""The secured broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer + ACLs) with the real clients and CLI.

The broker is `streamer broker start --secure`'s: its own ports (9096/9097) and data folder, never the
plaintext broker of the other tests. Under CI=true a broker that cannot start fails the module.
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic
from conftest import CI, REPO, WorkerProcess

from streamer import acls, broker, kafka_io, publisher, schemas, simulator

pytestmark = pytest.mark.integration
CLI_DEADLINE_S = 30  # a refused client must give up well within this (no retry loop)


@pytest.fixture(scope="module")
def secure_kafka() -> broker.BrokerConfig:
    cfg = broker.secure_config()
    started = not broker.is_up(cfg)
    try:
        broker.start(cfg, quiet=True)
    except Exception as exc:  # noqa: BLE001 - reported either way
        if CI:
            pytest.fail(f"secured Kafka broker unavailable under CI: {exc}")
        pytest.skip(f"secured Kafka broker unavailable ({exc}); run `streamer broker start --secure`")
    yield cfg
    if started:
        broker.stop(cfg, quiet=True)


@pytest.fixture
def granted(secure_kafka, prefix) -> str:
    """ACLs for this test's prefix, and every topic (inputs, outputs, compacted state) created by the admin."""
    broker.grant(secure_kafka, prefix)
    admin = broker.client_settings(secure_kafka, broker.ADMIN, topic_prefix=prefix)
    names = kafka_io.topics_for(admin)

    async def create():
        from aiokafka.admin import AIOKafkaAdminClient
        client = AIOKafkaAdminClient(**kafka_io.client_options(admin))
        await kafka_io.start_client(client, admin)
        try:
            state = acls.state_topic(names)
            await client.create_topics([NewTopic(t, 2, 1) for t in names.all() if t != state] + [
                NewTopic(state, 2, 1, topic_configs={"cleanup.policy": "compact"})])
        finally:
            await client.close()

    asyncio.run(create())
    return prefix


def passwords(cfg: broker.BrokerConfig) -> list[str]:
    return [cfg.password_file(u).read_text().strip() for u in broker.SECURE_USERS]


def cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "streamer.cli", *args], capture_output=True, text=True,
                          timeout=CLI_DEADLINE_S * 2, cwd=REPO,
                          env={k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")} | env)
    return proc, time.monotonic() - t0


def assert_one_clear_error(proc, elapsed: float, cause: str, secrets: list[str], max_lines: int = 1) -> None:
    """Exit 2 in bounded time with one ``streamer <cmd>: error: <cause>`` line, no traceback, no secret.

    ``max_lines``: stderr lines allowed in all (a refused fetch also gets aiokafka's own warnings).
    """
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert elapsed < CLI_DEADLINE_S, f"took {elapsed:.1f}s"
    ours = [line for line in proc.stderr.splitlines() if re.match(r"streamer \w+: error: ", line)]
    assert len(ours) == 1 and re.search(cause, ours[0]), proc.stderr
    assert len(proc.stderr.splitlines()) <= max_lines, f"retry storm?\n{proc.stderr}"
    assert "Traceback" not in out
    for s in secrets:
        assert s not in out


def test_round_trip_over_sasl_ssl_with_the_worker_and_simulator_principals(secure_kafka, granted):
    env = broker.client_env(secure_kafka, broker.SIMULATOR_USER)
    proc, _ = cli(["simulate", "--scenario", "calm", "--fast", "--topic-prefix", granted, "--no-progress"], env)
    assert proc.returncode == 0, proc.stderr
    sent = {m.group(2): int(m.group(1)) for m in re.finditer(r"(\d+) messages -> (\S+)", proc.stdout)}
    worker = broker.client_settings(secure_kafka, broker.WORKER_USER, topic_prefix=granted)
    names = kafka_io.topics_for(worker)
    assert set(sent) == set(names.inputs())

    async def read(topic):
        return [r async for r in kafka_io.consume(worker, topic, timeout_s=3.0)]

    ticks = asyncio.run(read(names.index_ticks))
    assert len(ticks) == sent[names.index_ticks]
    # byte for byte what the simulator generates for this seed
    expected = [schemas.encode(ev.msg) for ev in simulator.generate("calm", 0, preset="fast")
                if publisher.topic_of(worker, ev.kind) == names.index_ticks]
    assert sorted(r.value for r in ticks) == sorted(expected)
    assert all(secret not in proc.stdout + proc.stderr for secret in passwords(secure_kafka))


def test_wrong_password_is_one_clear_error(secure_kafka, granted, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("Wr0ng-password-for-test\n")
    for user, args in ((broker.WORKER_USER, ["consume", "triggers"]),
                       (broker.SIMULATOR_USER, ["simulate", "--fast", "--no-progress"])):
        env = broker.client_env(secure_kafka, user) | {"STREAMER_SASL_PASSWORD_FILE": str(wrong)}
        proc, elapsed = cli([*args, "--topic-prefix", granted], env)
        assert_one_clear_error(proc, elapsed, rf"SASL authentication of user '{user}' .*failed",
                               ["Wr0ng-password-for-test", *passwords(secure_kafka)])


def test_untrusted_broker_certificate_is_one_clear_error(secure_kafka, granted, tmp_path):
    other_ca, _ = broker.make_ca(tmp_path, "not-the-brokers-ca")
    for user, args in ((broker.WORKER_USER, ["consume", "triggers"]),
                       (broker.SIMULATOR_USER, ["simulate", "--fast", "--no-progress"])):
        env = broker.client_env(secure_kafka, user) | {"STREAMER_SSL_CAFILE": str(other_ca)}
        proc, elapsed = cli([*args, "--topic-prefix", granted], env)
        assert_one_clear_error(proc, elapsed, rf"TLS: the certificate of .* is not trusted .*{other_ca.name}",
                               passwords(secure_kafka))


@pytest.mark.parametrize("change, cause", [
    ({"STREAMER_SECURITY_PROTOCOL": "PLAINTEXT", "STREAMER_SASL_USERNAME": "", "STREAMER_SASL_PASSWORD_FILE": "",
      "STREAMER_SSL_CAFILE": ""}, r"closed the connection .*expect TLS or SASL"),
    ({"STREAMER_SASL_MECHANISM": "PLAIN"}, r"SASL: .* does not offer PLAIN"),
])
def test_protocol_or_mechanism_mismatch_is_one_clear_error(secure_kafka, granted, change, cause):
    env = broker.client_env(secure_kafka, broker.WORKER_USER) | change
    proc, elapsed = cli(["consume", "triggers", "--topic-prefix", granted], env)
    assert_one_clear_error(proc, elapsed, cause, passwords(secure_kafka))


def test_principal_without_acls_is_refused(secure_kafka, granted):
    env = broker.client_env(secure_kafka, broker.NO_ACL_USER)
    for args in (["consume", "index-ticks"], ["simulate", "--fast", "--no-progress"]):
        proc, elapsed = cli([*args, "--topic-prefix", granted], env)
        assert_one_clear_error(proc, elapsed, rf"refused user '{broker.NO_ACL_USER}' .*no ACL grants it",
                               passwords(secure_kafka), max_lines=4)


def test_grant_returns_once_the_broker_serves_the_acls_and_not_before(secure_kafka, granted):
    """``grant`` waits for the broker's authorizer (a client started right after it must not be refused)."""
    from aiokafka.admin import AIOKafkaAdminClient
    admin = broker.client_settings(secure_kafka, broker.ADMIN)

    async def wait_for(wanted, timeout_s):
        client = AIOKafkaAdminClient(**kafka_io.client_options(admin))
        await kafka_io.start_client(client, admin)
        try:
            await kafka_io._until_acls_served(client, wanted, timeout_s=timeout_s)
        finally:
            await client.close()

    asyncio.run(wait_for(acls.simulator_acls(granted, broker.SIMULATOR_USER), 5.0))  # served: returns
    never = [*acls.simulator_acls(granted, broker.SIMULATOR_USER), acls.Acl(broker.SIMULATOR_USER, "topic",
                                                                            f"{granted}never-granted", "Read")]
    t0 = time.monotonic()
    with pytest.raises(kafka_io.KafkaAccessError, match="does not serve 1 of the ACLs of User:streamer-simulator"):
        asyncio.run(wait_for(never, 1.0))
    assert time.monotonic() - t0 >= 1.0


def test_worker_cannot_write_where_its_acls_do_not_grant(secure_kafka, granted):
    worker = broker.client_settings(secure_kafka, broker.WORKER_USER, topic_prefix=granted)
    names = kafka_io.topics_for(worker)
    evs = list(simulator.generate("calm", 0, preset="fast"))[:5]  # index ticks: the worker's own input
    with pytest.raises(kafka_io.KafkaAccessError, match=rf"refused user '{broker.WORKER_USER}'.*{names.index_ticks}"):
        asyncio.run(publisher.publish(worker, evs, progress=False))

    async def write(topic):
        p = kafka_io.make_producer(worker)
        await kafka_io.start_client(p, worker)
        try:
            await p.send_and_wait(topic, b"{}", key=b"SPX")
        finally:
            await p.stop()

    asyncio.run(write(names.triggers))  # granted: the same producer may write its outputs
    from aiokafka.errors import TopicAuthorizationFailedError
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(write(f"{granted}some-other-topic"))
    # and it may read its inputs but not its outputs
    with pytest.raises(kafka_io.KafkaAccessError, match="no ACL grants it"):
        asyncio.run(_drain(worker, names.triggers))


async def _drain(settings, topic):
    return [r async for r in kafka_io.consume(settings, topic, timeout_s=2.0)]


def test_mutual_tls_principal_is_the_certificate_cn(secure_kafka, granted):
    """The SSL listener requires a client certificate; its CN is the principal the same ACLs name."""
    crt, key = secure_kafka.client_cert(broker.SIMULATOR_USER)
    env = {"STREAMER_BOOTSTRAP": f"{secure_kafka.host}:{secure_kafka.ssl_port}", "STREAMER_SECURITY_PROTOCOL": "SSL",
           "STREAMER_SSL_CAFILE": str(secure_kafka.ca_file), "STREAMER_SSL_CERTFILE": str(crt),
           "STREAMER_SSL_KEYFILE": str(key)}
    proc, _ = cli(["simulate", "--scenario", "calm", "--fast", "--topic-prefix", granted, "--no-progress"], env)
    assert proc.returncode == 0, proc.stderr
    sent = {m.group(2): int(m.group(1)) for m in re.finditer(r"(\d+) messages -> (\S+)", proc.stdout)}
    worker = broker.client_settings(secure_kafka, broker.WORKER_USER, mtls=True, topic_prefix=granted)
    names = kafka_io.topics_for(worker)
    assert len(asyncio.run(_drain(worker, names.open_interest))) == sent[names.open_interest]
    with pytest.raises(kafka_io.KafkaAccessError, match=rf"holder of certificate .*{broker.WORKER_USER}.crt"):
        asyncio.run(_drain(worker, names.triggers))  # its output: write-only
    env.pop("STREAMER_SSL_CERTFILE"), env.pop("STREAMER_SSL_KEYFILE")
    proc, elapsed = cli(["consume", "index-ticks", "--topic-prefix", granted], env)
    assert_one_clear_error(proc, elapsed, r"requires a client certificate", passwords(secure_kafka))


def test_broker_log_holds_no_secret(secure_kafka, granted):
    logs = [secure_kafka.log_file, secure_kafka.data_dir / "broker.stdout"]
    text = "".join(p.read_text(errors="replace") for p in logs if p.exists())
    assert "SASL_SSL" in text  # the log is the secured broker's and is not empty
    for secret in passwords(secure_kafka):
        assert secret not in text


def test_election_scenario_through_the_worker_over_sasl_ssl(secure_kafka, granted):
    """simulator principal → secured Kafka → worker principal → triggers (read back as the admin)."""
    sim = broker.client_settings(secure_kafka, broker.SIMULATOR_USER, topic_prefix=granted)
    worker = WorkerProcess(granted, secure_kafka.bootstrap, env=broker.client_env(secure_kafka, broker.WORKER_USER))
    try:
        worker.wait_ready(timeout=90)
        sent = asyncio.run(publisher.publish(sim, simulator.generate("election-2024", 0, preset="fast"),
                                             progress=False))
        worker.wait_consumed(dict(sent))
        admin = broker.client_settings(secure_kafka, broker.ADMIN, topic_prefix=granted)
        recs = asyncio.run(_drain(admin, kafka_io.topics_for(admin).triggers))
        rules = {schemas.parse_trigger_event(r.value).rule for r in recs}
        assert "election_vol_collapse" in rules, rules
    finally:
        worker.stop()
        log = Path(worker.data_dir) / "worker.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        for secret in passwords(secure_kafka):
            assert secret not in text
