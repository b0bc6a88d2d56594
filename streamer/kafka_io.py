"""Plain aiokafka helpers for the tools around the worker and the worker itself: the security options
of every Kafka client (``client_options``), client start-up that turns a connection failure into one
error naming its cause (``start_client``), topic creation, a batching producer and a consumer of a
topic from the beginning."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from pathlib import Path
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context

from streamer.errors import ConfigError, StreamerError
from streamer.settings import Settings, check_security
from streamer.topics import TopicNames

#: how long one diagnostic connection may take before it counts as "no answer"
DIAGNOSE_TIMEOUT_S = 10.0


class KafkaAccessError(StreamerError):
    """Kafka refused us or could not be reached: TLS trust, SASL credentials, ACLs or no listener.

    Not retriable: the same credentials would fail the same way, so callers exit with the message
    (which names the cause and never holds a secret) instead of retrying.
    """


def _read_secret(setting: str, path: str) -> str:
    try:
        value = Path(path).read_text().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{setting}: {path} is empty")
    return value


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of ``settings`` (CA, optional client certificate); ConfigError names a bad file."""
    password = None
    if settings.ssl_key_password_file:
        password = _read_secret("ssl_key_password_file", settings.ssl_key_password_file)
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{name}: {path} does not exist")
    try:
        return create_ssl_context(cafile=settings.ssl_cafile or None, certfile=settings.ssl_certfile or None,
                                  keyfile=settings.ssl_keyfile or None, password=password)
    except ssl.SSLError as exc:
        # the reason (e.g. "bad decrypt", "no certificate or crl found") without the password
        raise ConfigError(f"cannot load TLS files (ssl_cafile={settings.ssl_cafile or '-'}, "
                          f"ssl_certfile={settings.ssl_certfile or '-'}, ssl_keyfile={settings.ssl_keyfile or '-'}): "
                          f"{exc.reason or exc}") from None


def client_options(settings: Settings) -> dict:
    """Keyword arguments for AIOKafkaConsumer / AIOKafkaProducer / AIOKafkaAdminClient: the bootstrap
    servers and the security options of ``settings``, secrets read from their files now.

    The result holds the SASL password: pass it to the client, never log it.
    """
    check_security(settings)
    proto = settings.security_protocol.upper()
    opts: dict = {"bootstrap_servers": settings.bootstrap, "security_protocol": proto}
    if proto.endswith("SSL"):
        opts["ssl_context"] = ssl_context(settings)
    if proto.startswith("SASL_"):
        opts["sasl_mechanism"] = settings.sasl_mechanism.upper()
        opts["sasl_plain_username"] = settings.sasl_username
        opts["sasl_plain_password"] = _read_secret("sasl_password_file", settings.sasl_password_file)
    return opts


def faust_credentials(settings: Settings):
    """``broker_credentials`` for a Faust app with the security of ``settings`` (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials

    opts = client_options(settings)
    proto = opts["security_protocol"]
    if proto.startswith("SASL_"):
        return SASLCredentials(username=opts["sasl_plain_username"], password=opts["sasl_plain_password"],
                               ssl_context=opts.get("ssl_context"), mechanism=opts["sasl_mechanism"])
    if proto == "SSL":
        return SSLCredentials(opts["ssl_context"])
    return None


def _describe(settings: Settings, host: str, exc: BaseException) -> str:
    """One sentence naming why connecting to ``host`` failed (never a secret)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the certificate of {host} is not trusted ({exc.verify_message}); "
                f"check ssl_cafile ({settings.ssl_cafile or 'system CAs'})")
    proto = settings.security_protocol.upper()
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {host} failed ({exc.reason or exc}); is it a TLS listener?"
    if isinstance(exc, ConnectionResetError) or (isinstance(exc, KafkaConnectionError) and "closed" in str(exc)):
        if proto.endswith("SSL"):
            cert = (f"it rejected the client certificate {settings.ssl_certfile}" if settings.ssl_certfile
                    else "it requires a client certificate (ssl_certfile/ssl_keyfile, none set)")
            return f"{host} dropped the TLS connection: not a TLS listener, or {cert}"
        return (f"{host} closed the connection at the first request; does it expect TLS or SASL? "
                f"(security_protocol {proto})")
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"SASL: {host} does not offer {settings.sasl_mechanism}"
    if isinstance(exc, SaslAuthenticationFailed):
        return (f"SASL authentication of user {settings.sasl_username!r} ({settings.sasl_mechanism}) failed at "
                f"{host}: wrong password (sasl_password_file) or unknown user")
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {host} (connection refused)"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"no answer from {host} within {DIAGNOSE_TIMEOUT_S:.0f}s (wrong security_protocol for this port?)"
    return f"cannot connect to {host}: {type(exc).__name__}: {exc}"


async def diagnose(settings: Settings) -> str | None:
    """Connect once to each bootstrap server as a client would; None when all accept us, else why not."""
    opts = client_options(settings)
    opts.pop("bootstrap_servers")
    problems = []
    for host in settings.bootstrap.split(","):
        name, _, port = host.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(name, int(port), request_timeout_ms=int(DIAGNOSE_TIMEOUT_S * 1000),
                                                      **opts), DIAGNOSE_TIMEOUT_S)
        except (OSError, KafkaError, asyncio.TimeoutError) as exc:
            problems.append(_describe(settings, host.strip(), exc))
        else:
            conn.close()
    return "; ".join(problems) or None


async def start_client(client, settings: Settings) -> None:
    """``await client.start()``; a failure to bootstrap becomes one KafkaAccessError naming the cause.

    aiokafka tries each bootstrap server once and reports only "Unable to bootstrap"; the cause
    (untrusted certificate, wrong password, ...) is found by one diagnostic connection per server.
    """
    try:
        with _bootstrap_errors_reported_here():
            await client.start()
    except KafkaConnectionError:
        await _close(client)
        why = await diagnose(settings)
        raise KafkaAccessError(f"cannot connect to Kafka at {settings.bootstrap} "
                               f"({settings.security_protocol}): {why or 'bootstrap failed'}") from None
    except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
        await _close(client)  # a consumer fetches its topics' metadata in start()
        raise refused(settings, exc, f"access to {', '.join(map(str, exc.args)) or 'its topics'}") from None


class _DropBootstrapErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect to")


@contextlib.contextmanager
def _bootstrap_errors_reported_here():
    """aiokafka logs each failed bootstrap connection, then raises; start_client's error names the
    same cause, so the log line would only repeat it."""
    f = _DropBootstrapErrors()
    logger = logging.getLogger("aiokafka")  # aiokafka.client logs there
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


async def _close(client) -> None:
    try:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    except Exception:  # noqa: BLE001 - a half-started client may fail to stop; the start error matters
        pass


def refused(settings: Settings, exc: KafkaError, what: str) -> KafkaAccessError:
    """The error for an ACL refusal: who (user or certificate), what was refused, never a secret."""
    who = (f"user {settings.sasl_username!r}" if settings.sasl_username else
           f"the holder of certificate {settings.ssl_certfile}" if settings.ssl_certfile else "this client")
    return KafkaAccessError(f"Kafka refused {who} {what}: {type(exc).__name__} (no ACL grants it)")


async def ensure_topics(settings: Settings, names: list[str], partitions: int | None = None) -> None:
    """Create ``names`` (replication 1) if missing; existing topics are left as they are."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        cfg = getattr(topics_for(settings), "config", lambda name: {})  # e.g. the compacted state topic
        new = [NewTopic(n, partitions or settings.partitions, 1, topic_configs=cfg(n) or None)
               for n in dict.fromkeys(names) if n not in existing]
        if new:
            try:
                resp = await admin.create_topics(new)
            except TopicAlreadyExistsError:
                resp = None
            _check_created(settings, resp)
            await _until_topics_served(admin, [t.name for t in new])
    finally:
        await admin.close()


async def _until_served(missing, timeout_s: float) -> None:
    """Poll ``missing()`` (awaitable: what the broker does not serve yet, "" once it does) every 50 ms;
    after ``timeout_s``, KafkaAccessError naming what is still missing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while what := await missing():
        if loop.time() > deadline:
            raise KafkaAccessError(f"{what} {timeout_s:.0f} s later")
        await asyncio.sleep(0.05)


async def _until_topics_served(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 60.0) -> None:
    """Return once the broker's metadata shows ``names`` with a leader for every partition.

    The controller answers CreateTopics before the broker has the topics: on a broker that has just
    started this took 3.9 s (10-30 ms when warm), and a client started in between logs "Topic ... not
    found in cluster metadata" and retries (seen in the demo).
    """
    from aiokafka.protocol.metadata import MetadataRequest

    async def missing() -> str:  # (admin.describe_topics would let the broker auto-create a topic it asks about)
        desc = (await admin._send_request(MetadataRequest(names, allow_auto_topic_creation=False))).to_object()["topics"]
        pending = [d["topic"] for d in desc
                   if d["error_code"] != 0 or not d["partitions"] or any(p["leader"] < 0 for p in d["partitions"])]
        return f"the broker created {', '.join(pending)} but does not serve them" if pending else ""

    await _until_served(missing, timeout_s)


async def delete_topics(settings: Settings, names: list[str]) -> None:
    """Delete ``names`` where they exist (demo clean-up)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def _check_created(settings: Settings, resp) -> None:
    """Raise for a topic the broker refused to create (ACLs); "already exists" is fine (a race)."""
    from aiokafka.errors import for_code

    for topic, code, *_ in getattr(resp, "topic_errors", None) or ():
        if code == 0 or for_code(code) is TopicAlreadyExistsError:
            continue
        exc = for_code(code)()
        if "Authorization" in type(exc).__name__:
            raise refused(settings, exc, f"creating topic {topic}")
        raise KafkaAccessError(f"cannot create topic {topic}: {type(exc).__name__}")


# Kafka's AclOperation / ResourceType / PatternType / AclPermissionType codes (Admin API, KIP-140)
_ACL_OPERATION = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8}
_ACL_RESOURCE = {"topic": 2, "group": 3}
_PATTERN_LITERAL, _ALLOW = 3, 3


async def create_acls(settings: Settings, acls) -> None:
    """Create ``acls`` (streamer.acls.Acl, ALLOW from any host) with the admin API; existing ones are kept.

    aiokafka 0.14 has the CreateAcls request but no admin method for it, so it is sent here.
    """
    from aiokafka.errors import for_code
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(**client_options(settings))
    await start_client(admin, settings)
    try:
        for acl in acls:
            req = CreateAclsRequest(_ACL_RESOURCE[acl.resource_type], acl.name, _PATTERN_LITERAL,
                                    f"User:{acl.principal}", "*", _ACL_OPERATION[acl.operation], _ALLOW)
            resp = await admin._send_to_controller(req)  # any node forwards to the KRaft controller
            for code, message in resp.creation_responses:
                if code:
                    raise KafkaAccessError(f"cannot create ACL {acl}: {for_code(code).__name__} {message or ''}")
        await _until_acls_served(admin, acls)
    finally:
        await admin.close()


async def _until_acls_served(admin: AIOKafkaAdminClient, acls, timeout_s: float = 30.0) -> None:
    """Return once every broker's authorizer serves ``acls``.

    The controller commits an ACL before the brokers replay it from the metadata log: a client that
    starts right after ``create_acls`` returned could otherwise be refused (seen in CI: the
    simulator's first topic request refused just after the grant).
    """
    from aiokafka.protocol.admin import DescribeAclsRequest

    wanted: dict[str, set] = {}
    for acl in acls:
        wanted.setdefault(f"User:{acl.principal}", set()).add(
            (_ACL_RESOURCE[acl.resource_type], acl.name, _ACL_OPERATION[acl.operation]))

    async def missing() -> str:
        for node in sorted(b.nodeId for b in admin._client.cluster.brokers()):
            for principal, need in wanted.items():  # this principal, any resource, pattern, host, operation
                resp = await admin._send_request_to_node(node, DescribeAclsRequest(1, None, 1, principal, None, 1, 1))
                served = {(rtype, name, op) for rtype, name, _pattern, entries in resp.resources
                          for _p, _host, op, perm in entries if perm == _ALLOW}
                if resp.error_code or not need <= served:
                    return f"broker {node} does not serve {len(need - served)} of the ACLs of {principal}"
        return ""

    await _until_served(missing, timeout_s)


def make_producer(settings: Settings, **kw) -> AIOKafkaProducer:
    """A producer tuned for throughput: small linger, lz4-free (no extra deps), acks from the leader."""
    opts = dict(client_options(settings), linger_ms=5, max_batch_size=256 * 1024, acks=1)
    opts.update(kw)
    return AIOKafkaProducer(**opts)


async def consume(settings: Settings, topic: str, *, timeout_s: float, until=None,
                  from_beginning: bool = True) -> AsyncIterator:
    """Yield records of ``topic`` (no consumer group) until ``timeout_s`` of silence or ``until(rec)``."""
    consumer = AIOKafkaConsumer(topic, group_id=None, auto_offset_reset="earliest" if from_beginning else "latest",
                                enable_auto_commit=False, **client_options(settings))
    await start_client(consumer, settings)
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < timeout_s:
            try:
                batch = await consumer.getmany(timeout_ms=200)
            except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
                raise refused(settings, exc, f"reading {topic}") from None
            for records in batch.values():
                for rec in records:
                    quiet_since = time.monotonic()
                    yield rec
                    if until is not None and until(rec):
                        return
    finally:
        await consumer.stop()


def topics_for(settings: Settings) -> TopicNames:
    return TopicNames(settings.topic_prefix)


def run(coro):
    """Run a coroutine to completion from synchronous CLI code."""
    return asyncio.run(coro)
