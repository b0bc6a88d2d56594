"""A real local Apache Kafka broker without Docker: Kafka 4.1 in KRaft combined mode from Maven jars.

``fetch()`` downloads ``org.apache.kafka:kafka_2.13`` and a log4j2 binding once, with Maven, into a
cache folder outside the checkout (``$STREAMER_CACHE_DIR`` or ``~/.cache/streamer``), so fresh clones
and CI reuse it. ``start()`` formats storage on first use, launches ``kafka.Kafka`` as a detached JVM
(logs to a file), and waits until the broker answers; ``stop()`` shuts it down cleanly. Both are
idempotent. One node, broker+controller, listening on 127.0.0.1 only, tuned for tests
(no initial rebalance delay, small internal-topic partition counts).

``secure_config()`` describes a second, secured broker on other ports and another data folder
(``streamer broker start --secure``): a SASL_SSL listener (SCRAM-SHA-512 and SCRAM-SHA-256) and a
mutual-TLS listener, a CA with broker and client certificates made at first start with openssl, SCRAM
users (admin, the worker, the simulator and a principal without any ACL) added when the storage is
formatted, and the StandardAuthorizer, so every client needs an ACL (``grant``). The KRaft controller listener stays PLAINTEXT on 127.0.0.1 (its
principal, ANONYMOUS, is a super user so the broker can register with its own controller).
"""
from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from streamer.errors import BrokerUnavailable, StreamerError

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"  # log4j-slf4j2-impl needs slf4j-api 2.x; Maven would otherwise pick 1.7

POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.streamer</groupId><artifactId>kafka-runtime</artifactId><version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>{LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{SLF4J_VERSION}</version></dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _cache_dir() -> Path:
    base = os.environ.get("STREAMER_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "streamer")
    return Path(base)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where the broker lives and listens. Every field has an environment override."""

    host: str = "127.0.0.1"
    port: int = int(os.environ.get("STREAMER_KAFKA_PORT", "9092"))
    controller_port: int = int(os.environ.get("STREAMER_KAFKA_CONTROLLER_PORT", "9093"))
    data_dir: Path = Path(os.environ.get("STREAMER_KAFKA_DIR") or _cache_dir() / "kafka-data")
    heap: str = os.environ.get("STREAMER_KAFKA_HEAP", "768m")
    #: SASL_SSL listener, SCRAM users and ACLs (see secure_config)
    secure: bool = False
    #: with ``secure``: also a mutual-TLS listener here (0 = none); the principal is the client
    #: certificate's CN, so the same ACLs hold for a user authenticating either way
    ssl_port: int = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def libs_dir(self) -> Path:
        return _cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """PEM CA certificate that signed the secured broker's certificate (clients' ssl_cafile)."""
        return self.tls_dir / "ca.pem"

    def password_file(self, user: str) -> Path:
        """File holding a SCRAM user's password on the secured broker (clients' sasl_password_file)."""
        return self.data_dir / "secrets" / f"{user}.password"

    def client_cert(self, user: str) -> tuple[Path, Path]:
        """(certificate, key) PEM files of ``user`` for the mutual-TLS listener (CN = user)."""
        return self.tls_dir / "clients" / f"{user}.crt", self.tls_dir / "clients" / f"{user}.key"

    def server_properties(self) -> str:
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{self.host}:{self.controller_port}",
            *(self._secure_listener() if self.secure else [
                f"listeners=PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://{self.host}:{self.port}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self.data_dir / 'logs'}",
            "num.partitions=2",
            "auto.create.topics.enable=true",
            # single node: replication 1, small internal topics, no join delay (tests rebalance a lot)
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=48",
            "log.segment.bytes=67108864",
        ]) + "\n"

    def _secure_listener(self) -> list[str]:
        admin_pw = self.password_file(ADMIN).read_text().strip()
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        mtls = f",SSL://{self.host}:{self.ssl_port}" if self.ssl_port else ""
        return [
            f"listeners=SASL_SSL://{self.host}:{self.port}{mtls},CONTROLLER://{self.host}:{self.controller_port}",
            f"advertised.listeners=SASL_SSL://{self.host}:{self.port}{mtls}",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT",
            # mutual TLS on the SSL listener; User:<CN> as principal (default would be User:CN=<cn>)
            "listener.name.ssl.ssl.client.auth=required",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "inter.broker.listener.name=SASL_SSL",
            "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            # the broker's own client login (inter-broker) is the admin; the server side needs no options
            f'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram} username="{ADMIN}" password="{admin_pw}";',
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram};",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.tls_dir / 'broker-keystore.pem'}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{ADMIN};User:ANONYMOUS",
        ]


#: SCRAM users of the secured broker: a super user, the two application principals, and one
#: principal that authenticates but holds no ACL (tests check it is refused)
ADMIN = "admin"
WORKER_USER = "streamer-worker"
SIMULATOR_USER = "streamer-simulator"
NO_ACL_USER = "streamer-nobody"
SECURE_USERS = (ADMIN, WORKER_USER, SIMULATOR_USER, NO_ACL_USER)


def secure_config() -> BrokerConfig:
    """The secured broker: SASL_SSL on 9096, mutual TLS on 9098, controller on 9097 (9094 is the
    compose stack's Kafka) and folder kafka-secure-data, unless overridden by STREAMER_SECURE_KAFKA_PORT,
    STREAMER_SECURE_KAFKA_SSL_PORT, STREAMER_SECURE_KAFKA_CONTROLLER_PORT, STREAMER_SECURE_KAFKA_DIR."""
    return BrokerConfig(
        port=int(os.environ.get("STREAMER_SECURE_KAFKA_PORT", "9096")),
        controller_port=int(os.environ.get("STREAMER_SECURE_KAFKA_CONTROLLER_PORT", "9097")),
        data_dir=Path(os.environ.get("STREAMER_SECURE_KAFKA_DIR") or _cache_dir() / "kafka-secure-data"),
        secure=True, ssl_port=int(os.environ.get("STREAMER_SECURE_KAFKA_SSL_PORT", "9098")))


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise StreamerError("openssl is required for the secured broker: apt-get install openssl") from None
    except subprocess.CalledProcessError as exc:
        raise StreamerError(f"openssl {args[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from None


def make_ca(folder: Path, name: str, days: int = 365) -> tuple[Path, Path]:
    """A self-signed CA in ``folder``: (``name``.pem certificate, ``name``.key key)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", str(days), "-subj", f"/CN=streamer {name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_certificate(folder: Path, name: str, ca: tuple[Path, Path], *, server: bool,
                     hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 365) -> tuple[Path, Path]:
    """A certificate signed by ``ca`` in ``folder``: (``name``.crt, ``name``.key, PKCS#8 unencrypted)."""
    cert, key, csr = folder / f"{name}.crt", folder / f"{name}.key", folder / f"{name}.csr"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    san = ",".join(("IP:" if h.replace(".", "").isdigit() else "DNS:") + h for h in hosts)
    with tempfile.NamedTemporaryFile("w", suffix=".ext", dir=folder, delete=False) as ext:
        ext.write(f"subjectAltName={san}\nextendedKeyUsage={'serverAuth' if server else 'clientAuth'}\n")
    try:
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
                 "-out", str(cert), "-days", str(days), "-extfile", ext.name)
    finally:
        os.unlink(ext.name)
        csr.unlink(missing_ok=True)
    return cert, key


def _prepare_secure(cfg: BrokerConfig) -> None:
    """Passwords (random, once, mode 600) and the TLS files (again when they expire within a day)."""
    (cfg.data_dir / "secrets").mkdir(parents=True, exist_ok=True, mode=0o700)
    for user in SECURE_USERS:
        f = cfg.password_file(user)
        if not f.exists():
            f.touch(mode=0o600)
            f.write_text(secrets.token_urlsafe(24) + "\n")
    keystore = cfg.tls_dir / "broker-keystore.pem"
    clients = [cfg.client_cert(u)[0] for u in SECURE_USERS if u != ADMIN]
    if keystore.exists() and all(f.exists() for f in clients) and all(subprocess.run(
            ["openssl", "x509", "-checkend", "86400", "-noout", "-in", str(f)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
            for f in [cfg.tls_dir / "broker.crt", *clients]):
        return
    (cfg.tls_dir / "clients").mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = make_ca(cfg.tls_dir, "ca")
    cert, key = make_certificate(cfg.tls_dir, "broker", ca, server=True, hosts=("localhost", cfg.host))
    # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain
    keystore.write_text(key.read_text() + cert.read_text() + ca[0].read_text())
    keystore.chmod(0o600)
    for user in SECURE_USERS:
        if user != ADMIN:
            make_certificate(cfg.tls_dir / "clients", user, ca, server=False, hosts=(user,))


def client_settings(cfg: BrokerConfig, user: str, *, mtls: bool = False, **overrides):
    """Settings of a client of the secured broker authenticating as ``user``: SCRAM-SHA-512 over TLS,
    or with ``mtls`` its client certificate on the mutual-TLS listener."""
    from streamer.settings import Settings, check_security

    if mtls:
        crt, key = cfg.client_cert(user)
        s = Settings(bootstrap=f"{cfg.host}:{cfg.ssl_port}", security_protocol="SSL", ssl_cafile=str(cfg.ca_file),
                     ssl_certfile=str(crt), ssl_keyfile=str(key))
    else:
        s = Settings(bootstrap=cfg.bootstrap, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                     sasl_username=user, sasl_password_file=str(cfg.password_file(user)),
                     ssl_cafile=str(cfg.ca_file))
    for k, v in overrides.items():
        setattr(s, k, v)
    check_security(s)
    return s


def client_env(cfg: BrokerConfig, user: str) -> dict[str, str]:
    """``STREAMER_*`` variables for a process (worker, simulate, consume) of the secured broker as ``user``."""
    return {"STREAMER_BOOTSTRAP": cfg.bootstrap, "STREAMER_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMER_SASL_MECHANISM": "SCRAM-SHA-512", "STREAMER_SASL_USERNAME": user,
            "STREAMER_SASL_PASSWORD_FILE": str(cfg.password_file(user)), "STREAMER_SSL_CAFILE": str(cfg.ca_file)}


def grant(cfg: BrokerConfig, prefix: str = "") -> None:
    """Create the worker's and simulator's ACLs (streamer.acls) for topic prefix ``prefix``, as the admin."""
    import asyncio

    from streamer import acls, kafka_io

    admin = client_settings(cfg, ADMIN)
    asyncio.run(kafka_io.create_acls(admin, acls.worker_acls(prefix, WORKER_USER)
                                     + acls.simulator_acls(prefix, SIMULATOR_USER)))


def fetch(cfg: BrokerConfig | None = None, quiet: bool = False) -> Path:
    """Download the Kafka jars with Maven once; returns the libs folder. Idempotent."""
    cfg = cfg or BrokerConfig()
    marker = cfg.libs_dir / ".complete"
    if marker.exists():
        return cfg.libs_dir
    work = cfg.libs_dir.parent
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(POM)
    if not quiet:
        print(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {cfg.libs_dir} ...", flush=True)
    cmd = ["mvn", "-B", "-q", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={cfg.libs_dir}"]
    try:
        subprocess.run(cmd, check=True)
    except FileNotFoundError:
        raise StreamerError("Maven (mvn) is required to fetch the Kafka jars: apt-get install maven") from None
    except subprocess.CalledProcessError as exc:
        raise StreamerError(f"mvn failed ({exc.returncode}) fetching Kafka jars") from None
    marker.write_text(KAFKA_VERSION + "\n")
    return cfg.libs_dir


def _java(cfg: BrokerConfig, main: str, *args: str, heap: str | None = None) -> list[str]:
    cmd = ["java", f"-Xmx{heap or '256m'}", "-XX:+UseSerialGC" if heap is None else "-XX:+UseG1GC",
           f"-Dlog4j2.configurationFile={cfg.data_dir / 'log4j2.properties'}",
           "-cp", str(cfg.libs_dir / "*"), main, *args]
    return cmd


def is_up(cfg: BrokerConfig | None = None, timeout: float = 1.0) -> bool:
    """True when the broker accepts a Kafka ApiVersions request on its listener."""
    cfg = cfg or BrokerConfig()
    # ApiVersions v0 request: size, api_key=18, api_version=0, correlation_id=1, client_id="streamer"
    client = b"streamer"
    body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big") \
        + len(client).to_bytes(2, "big") + client
    try:
        with socket.create_connection((cfg.host, cfg.port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            # the secured listener answers ApiVersions after the TLS handshake, before SASL
            s = ssl.create_default_context(cafile=str(cfg.ca_file)).wrap_socket(
                raw, server_hostname=cfg.host) if cfg.secure else raw
            s.sendall(len(body).to_bytes(4, "big") + body)
            head = s.recv(10)
            # size(4) correlation_id(4) error_code(2); error 0 means the broker is serving
            return len(head) >= 10 and head[4:8] == (1).to_bytes(4, "big") and head[8:10] == b"\x00\x00"
    except (OSError, ssl.SSLError):
        return False


def _pid(cfg: BrokerConfig) -> int | None:
    try:
        pid = int(cfg.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        # reap it if it is our own exited child (a zombie still answers kill 0)
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return None
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def new_cluster_id() -> str:
    """16 random bytes in unpadded base64url, as `kafka-storage random-uuid` makes them, and like Kafka's
    ``Uuid.randomUuid`` never starting with "-": StorageTool would read such an id as an option and fail
    (1 fresh format in 64; it failed a test run).

    >>> all(not new_cluster_id().startswith("-") and len(new_cluster_id()) == 22 for _ in range(1000))
    True
    """
    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cid


def start(cfg: BrokerConfig | None = None, timeout: float = 90.0, quiet: bool = False) -> BrokerConfig:
    """Start the broker if it is not up (formatting storage on first use) and wait until it answers."""
    cfg = cfg or BrokerConfig()
    if is_up(cfg):
        if not quiet:
            print(f"kafka broker already up at {cfg.bootstrap}", flush=True)
        return cfg
    ports = [p for p in (cfg.port, cfg.controller_port, cfg.ssl_port) if p]
    if len(set(ports)) != len(ports):
        raise StreamerError(f"the broker's ports must differ: client {cfg.port}, controller {cfg.controller_port}"
                            + (f", SSL {cfg.ssl_port}" if cfg.ssl_port else ""))
    fetch(cfg, quiet=quiet)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if cfg.secure:
        _prepare_secure(cfg)
    (cfg.data_dir / "log4j2.properties").write_text(LOG4J2.format(log=cfg.log_file))
    cfg.properties_file.write_text(cfg.server_properties())
    cfg.properties_file.chmod(0o600)  # the secured broker's holds the admin password
    if not (cfg.data_dir / "logs" / "meta.properties").exists():
        cluster_id = new_cluster_id()
        scram = []
        if cfg.secure:  # SCRAM credentials live in the metadata log, so they are added at format time
            for user in SECURE_USERS:
                pw = cfg.password_file(user).read_text().strip()
                for mech in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
                    scram += ["--add-scram", f"{mech}=[name={user},password={pw}]"]
        fmt = subprocess.run(_java(cfg, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                   "-c", str(cfg.properties_file), "--ignore-formatted", *scram),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if fmt.returncode:
            said = [ln.strip() for ln in fmt.stderr.decode(errors="replace").splitlines()
                    if ln.strip() and not ln.lstrip().startswith("at ")]
            why = ([ln for ln in said if "error" in ln.lower() or "exception" in ln.lower()] or said)[:3] \
                or ["(no output)"]
            for user in SECURE_USERS if cfg.secure else ():
                why = [ln.replace(cfg.password_file(user).read_text().strip(), "***") for ln in why]
            raise StreamerError(f"formatting the Kafka storage in {cfg.data_dir / 'logs'} failed "
                                f"(exit {fmt.returncode}): {' | '.join(why)}")
    pid = _pid(cfg)
    if pid is None:
        log = open(cfg.data_dir / "broker.stdout", "ab")
        proc = subprocess.Popen(_java(cfg, "kafka.Kafka", str(cfg.properties_file), heap=cfg.heap),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        cfg.pid_file.write_text(f"{proc.pid}\n")
        pid = proc.pid
    if not quiet:
        print(f"starting kafka {KAFKA_VERSION} (pid {pid}) on {cfg.bootstrap}; log: {cfg.log_file}", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_up(cfg):
            return cfg
        if _pid(cfg) is None:
            raise BrokerUnavailable(f"kafka exited during start-up; see {cfg.log_file} and "
                                    f"{cfg.data_dir / 'broker.stdout'}")
        time.sleep(0.3)
    raise BrokerUnavailable(f"kafka did not answer on {cfg.bootstrap} within {timeout:.0f}s; see {cfg.log_file}")


def stop(cfg: BrokerConfig | None = None, timeout: float = 60.0, quiet: bool = False) -> bool:
    """Stop the broker this module started (SIGTERM, then SIGKILL after ``timeout``). Idempotent."""
    cfg = cfg or BrokerConfig()
    pid = _pid(cfg)
    if pid is None:
        if not quiet:
            print("kafka broker not running (no live pid file)", flush=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid(cfg) is not None:
        time.sleep(0.2)
    if _pid(cfg) is not None:
        os.kill(pid, signal.SIGKILL)
    cfg.pid_file.unlink(missing_ok=True)
    if not quiet:
        print(f"kafka broker (pid {pid}) stopped", flush=True)
    return True
