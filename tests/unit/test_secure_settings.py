"""Kafka client security settings: sources (TOML, env), validation, secrets read from files and never shown,
TLS contexts that really verify, and the ACL spec of the worker and simulator principals."""
from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streamer import acls, broker, kafka_io
from streamer.errors import ConfigError
from streamer.settings import Settings, load_settings
from streamer.topics import TopicNames

SECRET = "s3cr3t-Pa55word-xyz"
SECURITY_ENV = ("STREAMER_SECURITY_PROTOCOL", "STREAMER_SASL_MECHANISM", "STREAMER_SASL_USERNAME",
                "STREAMER_SASL_PASSWORD_FILE", "STREAMER_SSL_CAFILE", "STREAMER_SSL_CERTFILE",
                "STREAMER_SSL_KEYFILE", "STREAMER_SSL_KEY_PASSWORD_FILE", "STREAMER_CONFIG")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in SECURITY_ENV:
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    """A CA, a server and a client certificate signed by it, and an unrelated CA (openssl, as the broker)."""
    d = tmp_path_factory.mktemp("pki")
    ca = broker.make_ca(d, "ca")
    other = broker.make_ca(d, "other-ca")
    server = broker.make_certificate(d, "server", ca, server=True)
    client = broker.make_certificate(d, "client", ca, server=False)
    (d / "key.pw").write_text("keypass-123\n")
    enc = d / "client-enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(client[1]), "-aes256", "-passout", f"file:{d / 'key.pw'}",
                    "-out", str(enc)], check=True)
    return {"ca": ca[0], "other_ca": other[0], "server_crt": server[0], "server_key": server[1],
            "client_crt": client[0], "client_key": client[1], "client_key_enc": enc, "key_pw": d / "key.pw"}


@pytest.fixture
def password_file(tmp_path) -> Path:
    f = tmp_path / "password"
    f.write_text(SECRET + "\n")  # `echo pw > file` and Kubernetes Secrets differ by this newline
    return f


def sasl_ssl(password_file: Path, pki, **kw) -> Settings:
    s = Settings(bootstrap="127.0.0.1:9096", security_protocol="SASL_SSL", sasl_username="streamer-worker",
                 sasl_password_file=str(password_file), ssl_cafile=str(pki["ca"]))
    for k, v in kw.items():
        setattr(s, k, v)
    return s


def test_plaintext_default_has_no_security_options():
    opts = kafka_io.client_options(Settings(bootstrap="h1:1,h2:2"))
    assert opts == {"bootstrap_servers": "h1:1,h2:2", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_reads_the_password_from_its_file(password_file, pki):
    opts = kafka_io.client_options(sasl_ssl(password_file, pki))
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "streamer-worker"
    assert opts["sasl_plain_password"] == SECRET  # trailing newline dropped
    ctx = opts["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_settings_from_env_and_toml(tmp_path, monkeypatch, password_file, pki):
    toml = tmp_path / "s.toml"
    toml.write_text(f'security_protocol = "SASL_SSL"\nsasl_mechanism = "SCRAM-SHA-256"\n'
                    f'sasl_username = "from-toml"\nsasl_password_file = "{password_file}"\n'
                    f'ssl_cafile = "{pki["ca"]}"\n')
    s = load_settings(toml)
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username) == ("SASL_SSL", "SCRAM-SHA-256", "from-toml")
    monkeypatch.setenv("STREAMER_SASL_USERNAME", "from-env")  # env wins over the file
    monkeypatch.setenv("STREAMER_SASL_MECHANISM", "PLAIN")
    s = load_settings(toml)
    assert (s.sasl_username, s.sasl_mechanism) == ("from-env", "PLAIN")
    assert kafka_io.client_options(s)["sasl_mechanism"] == "PLAIN"


@pytest.mark.parametrize("kw, words", [
    ({"security_protocol": "TLS"}, ["security_protocol", "SASL_SSL"]),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u",
      "sasl_password_file": "/p"}, ["sasl_mechanism", "SCRAM-SHA-512"]),
    ({"security_protocol": "SASL_SSL", "sasl_password_file": "/p"}, ["needs sasl_username"]),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"}, ["needs sasl_password_file"]),
    ({"sasl_username": "u"}, ["sasl_username", "PLAINTEXT", "SASL_SSL"]),
    ({"security_protocol": "SSL", "sasl_password_file": "/p"}, ["sasl_password_file", "SSL"]),
    ({"ssl_cafile": "/ca.pem"}, ["ssl_cafile", "PLAINTEXT", "does not use TLS"]),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password_file": "/p",
      "ssl_cafile": "/ca.pem"}, ["ssl_cafile", "SASL_PLAINTEXT"]),
    ({"security_protocol": "SSL", "ssl_keyfile": "/k"}, ["ssl_keyfile", "ssl_certfile"]),
])
def test_inconsistent_combinations_are_config_errors(kw, words):
    with pytest.raises(ConfigError) as err:
        load_settings(**kw)
    for w in words:
        assert w in str(err.value)


def test_missing_and_empty_secret_files(tmp_path, pki):
    s = sasl_ssl(tmp_path / "absent", pki)
    with pytest.raises(ConfigError, match=r"sasl_password_file: cannot read .*absent"):
        kafka_io.client_options(s)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        kafka_io.client_options(sasl_ssl(tmp_path / "empty", pki))
    with pytest.raises(ConfigError, match="ssl_cafile: .*does not exist"):
        kafka_io.client_options(sasl_ssl(tmp_path / "empty", pki, ssl_cafile=str(tmp_path / "no-ca.pem")))


def test_secret_never_in_repr_errors_or_help(password_file, pki, capsys):
    s = sasl_ssl(password_file, pki)
    assert SECRET not in repr(s) and str(password_file) in repr(s)  # the path, never the value
    creds = kafka_io.faust_credentials(s)
    assert SECRET not in repr(creds) and creds.password == SECRET and creds.ssl_context is not None
    # errors raised after the password was read do not carry it
    for bad in (sasl_ssl(password_file, pki, ssl_cafile=str(pki["key_pw"])),       # not a certificate
                sasl_ssl(password_file, pki, ssl_certfile=str(pki["client_crt"]),  # key of another cert
                         ssl_keyfile=str(pki["server_key"]))):
        with pytest.raises(ConfigError) as err:
            kafka_io.client_options(bad)
        assert SECRET not in str(err.value)
    out = subprocess.run([sys.executable, "-m", "streamer.cli", "consume", "--help"], capture_output=True,
                         text=True, check=True, env={"STREAMER_SASL_PASSWORD_FILE": str(password_file),
                                                     "PATH": "/usr/bin:/bin"}).stdout
    assert "STREAMER_SASL_PASSWORD_FILE" in out and SECRET not in out


def test_mutual_tls_with_an_encrypted_key(pki, tmp_path):
    s = Settings(security_protocol="SSL", ssl_cafile=str(pki["ca"]), ssl_certfile=str(pki["client_crt"]),
                 ssl_keyfile=str(pki["client_key_enc"]), ssl_key_password_file=str(pki["key_pw"]))
    assert isinstance(kafka_io.client_options(s)["ssl_context"], ssl.SSLContext)
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-key-password\n")
    s.ssl_key_password_file = str(wrong)
    with pytest.raises(ConfigError) as err:
        kafka_io.client_options(s)
    assert "not-the-key-password" not in str(err.value) and "ssl_keyfile" in str(err.value)


def _handshake(ctx: ssl.SSLContext, pki, require_client_cert: bool = False) -> None:
    """TLS handshake of ``ctx`` against a local server presenting the CA-signed server certificate."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki["server_crt"], pki["server_key"])
    if require_client_cert:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(pki["ca"])
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]

        def serve():
            conn, _ = srv.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"x")
        t.join(5)


def test_tls_context_trusts_its_ca_and_only_its_ca(password_file, pki):
    _handshake(kafka_io.client_options(sasl_ssl(password_file, pki))["ssl_context"], pki)
    untrusted = kafka_io.client_options(sasl_ssl(password_file, pki, ssl_cafile=str(pki["other_ca"])))
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        _handshake(untrusted["ssl_context"], pki)
    why = kafka_io._describe(sasl_ssl(password_file, pki, ssl_cafile=str(pki["other_ca"])), "h:1", err.value)
    assert "not trusted" in why and str(pki["other_ca"]) in why
    mtls = Settings(security_protocol="SSL", ssl_cafile=str(pki["ca"]), ssl_certfile=str(pki["client_crt"]),
                    ssl_keyfile=str(pki["client_key"]))
    _handshake(kafka_io.client_options(mtls)["ssl_context"], pki, require_client_cert=True)


def test_acls_grant_exactly_the_topics_of_the_contract():
    names = TopicNames("p-")
    got = {(a.resource_type, a.name, a.operation) for a in acls.worker_acls("p-", "w")}
    assert {a.principal for a in acls.worker_acls("p-", "w")} == {"w"}
    for t in names.inputs():
        assert {op for rt, n, op in got if n == t} == {"Read", "Describe", "Create"}
    for t in names.outputs():
        assert {op for rt, n, op in got if n == t} == {"Write", "Describe", "Create"}
    assert {op for rt, n, op in got if n == "p-streamer.state.v1"} == {"Read", "Write", "Describe", "Create"}
    assert {(rt, n) for rt, n, op in got if rt == "group"} == {("group", "p-streamer-worker")}
    assert {n for rt, n, op in got if rt == "topic"} == set(names.all()) | {"p-streamer.state.v1"}
    sim = {(a.name, a.operation) for a in acls.simulator_acls("p-", "s")}
    assert sim == {(t, op) for t in names.inputs() for op in ("Write", "Describe", "Create")}


def test_a_broker_whose_ports_collide_is_refused_before_anything_starts(tmp_path):
    """Kafka's StorageTool fails on a listener port used twice; say so plainly instead."""
    from streamer.errors import StreamerError
    cfg = broker.BrokerConfig(port=39123, controller_port=39123, data_dir=tmp_path / "kafka")
    with pytest.raises(StreamerError, match="ports must differ: client 39123, controller 39123"):
        broker.start(cfg, quiet=True)
    assert not (tmp_path / "kafka").exists()
