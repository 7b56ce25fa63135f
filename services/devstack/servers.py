"""Start, probe and stop a single-node Apache Kafka (KRaft) and a redis-server.

Kafka runs from the Maven Central jars (fetched once by `ensure_kafka_jars` into a cache
outside the repository) with the machine's Java; each server keeps its data under a
directory it owns, so several stacks (a demo and a test session) can run side by side.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from salespulse.devstack.tls import Pki
from salespulse.settings import REPO_ROOT

KAFKA_VERSION = "4.1.1"
POM = REPO_ROOT / "deploy" / "local" / "pom.xml"


class DevstackError(RuntimeError):
    """A local server could not be set up or started; the message says why and what to do."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "salespulse"


def kafka_libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / f"kafka-{version}" / "libs"


def ensure_kafka_jars(version: str = KAFKA_VERSION) -> Path:
    """Fetch the broker jars with Maven once; later calls return the cached folder."""
    libs = kafka_libs_dir(version)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevstackError("Maven (mvn) is needed once to fetch the Kafka jars: apt-get install maven")
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
         f"-Dkafka.version={version}", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
        capture_output=True, text=True,
    )
    if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise DevstackError(f"fetching Kafka {version} jars failed:\n{result.stdout}\n{result.stderr}")
    marker.touch()
    return libs


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free local TCP port, never the same one twice in this process: the system may hand a
    port just closed out again, and a broker given one port for both of its listeners refused
    to start (it happened in a test run)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise DevstackError(f"{what} exited with code {proc.returncode}; log {log}:\n{tail}")
        if predicate():
            return
        time.sleep(0.2)
    raise DevstackError(f"{what} was not ready after {timeout:.0f}s; see {log}")


def _stop(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaRaftServer
        level: INFO
"""


@dataclass
class LocalKafka:
    """A single-node KRaft broker+controller on 127.0.0.1."""

    home: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "1g"
    # With users (name -> password): clients must authenticate with SASL PLAIN over the
    # client listener (SASL_PLAINTEXT), as on a secured cluster; the broker talks to itself
    # as the user `broker`.
    sasl_users: dict[str, str] | None = None
    # With a PKI: the client listener speaks TLS (SSL) and requires a client certificate
    # signed by its CA; the broker talks to itself with its own certificate.
    tls: Pki | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    _broker_password: str = field(default_factory=lambda: uuid.uuid4().hex, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client_options(self) -> dict:
        """aiokafka options of a client allowed in (the broker's own user when SASL is on)."""
        options: dict = {"bootstrap_servers": self.bootstrap_servers}
        if self.sasl_users is not None:
            options.update(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                           sasl_plain_username="broker", sasl_plain_password=self._broker_password)
        if self.tls is not None:
            from aiokafka.helpers import create_ssl_context

            options.update(security_protocol="SSL", ssl_context=create_ssl_context(
                cafile=str(self.tls.ca_cert), certfile=str(self.tls.client_cert), keyfile=str(self.tls.client_key)))
        return options

    def _listener_config(self) -> list[str]:
        if self.sasl_users is not None and self.tls is not None:
            raise DevstackError("the local broker does SASL or TLS, not both")
        if self.tls is not None:
            tls = self.tls
            return [f"listeners=SSL://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=SSL://127.0.0.1:{self.port}",
                    "listener.security.protocol.map=SSL:SSL,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=SSL",
                    "ssl.keystore.type=PKCS12",
                    f"ssl.keystore.location={tls.broker_keystore}",
                    f"ssl.keystore.password={tls.keystore_password}",
                    f"ssl.key.password={tls.keystore_password}",
                    "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={tls.ca_cert}",
                    "ssl.client.auth=required"]
        if self.sasl_users is None:
            return [f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"]
        users = {"broker": self._broker_password, **self.sasl_users}
        jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="broker" password="{self._broker_password}" '
                + " ".join(f'user_{name}="{password}"' for name, password in users.items()) + ";")
        return [f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=PLAIN",
                "sasl.mechanism.inter.broker.protocol=PLAIN",
                f"listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"]

    @property
    def log_path(self) -> Path:
        return self.home / "kafka.log"

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            *self._listener_config(),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self.home / 'data'}",
            "num.partitions=6",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "log.retention.hours=-1",
            "",
        ]))
        (self.home / "log4j2.yaml").write_text(LOG4J2)
        return props

    def start(self, timeout: float = 90.0) -> "LocalKafka":
        java = shutil.which("java")
        if java is None:
            raise DevstackError("Java 17+ is needed to run the local Kafka broker: apt-get install openjdk-17-jre-headless")
        if port_open("127.0.0.1", self.port):
            raise DevstackError(
                f"something already listens on 127.0.0.1:{self.port}; stop it, or set "
                f"KAFKA_BOOTSTRAP_SERVERS to use that broker")
        libs = ensure_kafka_jars()
        props = self._write_config()
        classpath = f"{libs}/*"
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            fmt = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(props)],
                capture_output=True, text=True,
            )
            if fmt.returncode != 0:
                raise DevstackError(f"formatting Kafka storage failed:\n{fmt.stdout}\n{fmt.stderr}")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [java, f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
             f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
             "-cp", classpath, "kafka.Kafka", str(props)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _wait(self.ready, timeout, "Kafka", self.proc, self.log_path)
        return self

    def ready(self) -> bool:
        """True once the broker answers a metadata request (not merely a TCP connect)."""
        if not port_open("127.0.0.1", self.port):
            return False
        return kafka_answers(self.bootstrap_servers, options=self.client_options())

    def stop(self) -> None:
        _stop(self.proc, timeout=30.0)
        self.proc = None


def kafka_answers(bootstrap_servers: str, timeout: float = 5.0, options: dict | None = None) -> bool:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(**{"bootstrap_servers": bootstrap_servers, **(options or {})},
                                    request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout)
            await asyncio.wait_for(admin.describe_cluster(), timeout)
            return True
        except Exception:
            return False
        finally:
            await admin.close()

    return asyncio.run(probe())


@dataclass
class LocalRedis:
    """A redis-server on 127.0.0.1 without persistence: Redis is a read model, rebuilt from Kafka.

    With `password` it requires AUTH; with `tls` it listens on TLS only and requires a client
    certificate signed by the Pki's CA. `url` says how the product gets in (REDIS_URL)."""

    home: Path
    port: int = 6379
    password: str | None = field(default=None, repr=False)
    tls: Pki | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        files = {"ssl_ca_certs": self.tls.ca_cert, "ssl_certfile": self.tls.client_cert, "ssl_keyfile": self.tls.client_key}
        return f"rediss://{auth}127.0.0.1:{self.port}/0?" + urlencode({k: str(v) for k, v in files.items()})

    @property
    def log_path(self) -> Path:
        return self.home / "redis.log"

    def start(self, timeout: float = 20.0) -> "LocalRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise DevstackError("redis-server is needed: apt-get install redis-server (make deps does it)")
        if port_open("127.0.0.1", self.port):
            raise DevstackError(
                f"something already listens on 127.0.0.1:{self.port}; stop it, or set REDIS_URL to use it")
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        listen = ["--port", str(self.port)]
        if self.tls is not None:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.server_cert),
                      "--tls-key-file", str(self.tls.server_key), "--tls-ca-cert-file", str(self.tls.ca_cert)]
        # The password goes in on stdin (a config file read from "-"), not on the command line.
        config = "" if self.password is None else f"requirepass {_config_string(self.password)}\n"
        self.proc = subprocess.Popen(
            [binary, "-", "--bind", "127.0.0.1", *listen, "--dir", str(self.home),
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.proc.stdin.write(config.encode())
        self.proc.stdin.close()
        _wait(self.ready, timeout, "Redis", self.proc, self.log_path)
        return self

    def ready(self) -> bool:
        if not port_open("127.0.0.1", self.port):
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                sock = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
                    context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
                    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
                sock.sendall((b"" if self.password is None else _command("AUTH", self.password)) + _command("PING"))
                answer = b""
                while b"+PONG" not in answer and b"-" not in answer:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    answer += chunk
                return b"+PONG" in answer
        except (OSError, ssl.SSLError):
            return False

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


def _config_string(value: str) -> str:
    """`value` as a double-quoted string of a redis.conf line."""
    if "\n" in value or "\r" in value:
        raise DevstackError("a Redis password cannot hold a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _command(*args: str) -> bytes:
    """One Redis command in the protocol's array form (any bytes in its arguments)."""
    parts = [arg.encode() for arg in args]
    return f"*{len(parts)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
