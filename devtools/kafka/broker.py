"""A real single-node Apache Kafka (KRaft) for development and tests, without Docker.

Kafka's jars come from Maven Central (`artifacts`); the broker runs as a detached JVM
whose pid, config, data and log live in one run directory per port, so `up` can be
idempotent and `down` can find it again.

`up --secure` adds a SASL_SSL listener (TLS, SCRAM-SHA-512 and PLAIN) on port+2 with the
certificates and secrets of `pki`.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.errors import SeqwatchError
from app.kafka.settings import KafkaSettings
from devtools.kafka.artifacts import KAFKA_VERSION, cache_root, ensure_libs, require_tool
from devtools.kafka.pki import (
    SecureFiles,
    ensure_broker_material,
    read_secret,
    write_private,
)

SASL_USER = "seqwatch"
SECURE_MECHANISMS = ("SCRAM-SHA-512", "PLAIN")
"""SCRAM first: it is what we recommend (the password never crosses the wire)."""
SECURE_PORT_OFFSET = 2
"""The SASL_SSL listener's port relative to the client port (port+1 is the controller)."""


@dataclass(frozen=True)
class LocalKafka:
    """One local broker+controller, identified by its client port."""

    host: str = "127.0.0.1"
    port: int = 9092
    version: str = KAFKA_VERSION
    heap: str = "1g"
    secure: bool = False
    """Also open the SASL_SSL listener on `secure_port`."""

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def secure_port(self) -> int:
        return self.port + SECURE_PORT_OFFSET

    @property
    def secure_bootstrap(self) -> str:
        return f"{self.host}:{self.secure_port}"

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def libs_dir(self) -> Path:
        return cache_root() / "kafka" / self.version / "libs"

    @property
    def run_dir(self) -> Path:
        return cache_root() / "run" / f"kafka-{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "kafka.pid"

    @property
    def config_file(self) -> Path:
        return self.run_dir / "server.properties"

    @property
    def secure_dir(self) -> Path:
        """Certificates and secrets, mode 700."""
        return self.run_dir / "secure"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) clients trust: `--ssl-cafile`."""
        return self.secure_dir / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        return self.secure_dir / "broker.p12"

    @property
    def keystore_password_file(self) -> Path:
        return self.secure_dir / "keystore.password"

    @property
    def password_file(self) -> Path:
        """The SASL password of `SASL_USER` (SCRAM and PLAIN alike)."""
        return self.secure_dir / "sasl.password"

    @property
    def secure_files(self) -> SecureFiles:
        return SecureFiles(
            self.secure_dir,
            self.password_file,
            self.keystore_password_file,
            self.ca_file,
            self.keystore_file,
        )

    def runs_secure(self) -> bool:
        """Whether the last `up` configured the SASL_SSL listener (what a running broker has)."""
        try:
            return "SASL_SSL://" in self.config_file.read_text()
        except OSError:
            return False

    def client_settings(self, mechanism: str = "SCRAM-SHA-512") -> KafkaSettings:
        """Settings for the secure listener, with the generated password (tests, readiness)."""
        return KafkaSettings(
            bootstrap=self.secure_bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_username=SASL_USER,
            sasl_password=read_secret(self.password_file),
            ssl_cafile=str(self.ca_file),
        )

    def exports(self) -> list[str]:
        """Shell lines a user pastes to point seqwatch at the secure listener."""
        return [
            f"export SEQWATCH_BOOTSTRAP={self.secure_bootstrap}",
            "export SEQWATCH_SECURITY_PROTOCOL=SASL_SSL",
            f"export SEQWATCH_SASL_MECHANISM={SECURE_MECHANISMS[0]}",
            f"export SEQWATCH_SASL_USERNAME={SASL_USER}",
            f"export SEQWATCH_SSL_CAFILE={shlex.quote(str(self.ca_file))}",
            f'export SEQWATCH_SASL_PASSWORD="$(cat {shlex.quote(str(self.password_file))})"',
        ]

    # -- lifecycle ---------------------------------------------------------------

    def up(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return what was done.

        A broker running without the secure listener is restarted when `secure` asks for
        it (topics are kept); a secure one satisfies a plain `up` as it is.
        """
        pid = self.pid()
        restarted = ""
        if pid is not None:
            if self.secure and not self.runs_secure():
                self.down()
                restarted = " (restarted to add the SASL_SSL listener)"
            else:
                wait_until_ready(self.bootstrap, timeout=timeout)
                secure = f", SASL_SSL on {self.secure_bootstrap}" if self.runs_secure() else ""
                return f"already running (pid {pid}) on {self.bootstrap}{secure}"
        java = require_tool("java", "Java 17+ is needed to run the local Kafka broker")
        ports = [self.port, self.controller_port] + ([self.secure_port] if self.secure else [])
        _check_ports_free(self.host, ports)
        ensure_libs(self.libs_dir, self.version)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.secure:
            ensure_broker_material(self.secure_files, self.host, java)
        # Private: with --secure it holds the keystore and PLAIN passwords.
        write_private(self.config_file, self.server_properties())
        (self.run_dir / "log4j2.properties").write_text(_log4j2_properties(self.log_file))
        fresh = not (self.data_dir / "meta.properties").exists()
        if fresh:
            self._format(java)
        started = time.monotonic()
        log = open(self.run_dir / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            self._java_command(java, "kafka.Kafka", str(self.config_file)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=self.run_dir,
        )
        log.close()
        self.pid_file.write_text(f"{proc.pid}\n")
        try:
            wait_until_ready(self.bootstrap, timeout=timeout, alive=lambda: proc.poll() is None)
            if self.secure:
                if not fresh:  # formatted before --secure: --add-scram never ran
                    self._upsert_scram()
                self._wait_secure(timeout, alive=lambda: proc.poll() is None)
        except SeqwatchError as exc:
            self.down()
            reason = self.last_error()
            if reason and proc.poll() is not None:
                raise SeqwatchError(f"{exc}: {reason}") from None
            raise
        took = time.monotonic() - started
        secure = f", SASL_SSL on {self.secure_bootstrap}" if self.secure else ""
        return (
            f"started Kafka {self.version} (pid {proc.pid}) on {self.bootstrap}{secure}"
            f" in {took:.1f} s{restarted}"
        )

    def down(self, timeout: float = 30.0) -> str:
        """Stop the broker cleanly (SIGTERM, a controlled shutdown), SIGKILL as last resort."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return f"not running on {self.bootstrap}"
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        how = "stopped"
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
            how = f"killed (did not stop within {timeout:.0f} s)"
        self.pid_file.unlink(missing_ok=True)
        return f"{how} Kafka (pid {pid}) on {self.bootstrap}"

    def last_error(self) -> str:
        """The broker's own last ERROR or FATAL line: why a start failed, in one line."""
        for path in (self.log_file, self.run_dir / "stdout.log"):
            try:
                with path.open("rb") as handle:
                    handle.seek(max(0, path.stat().st_size - 256 * 1024))
                    lines = handle.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            for line in reversed(lines):
                if " ERROR " in line or " FATAL " in line or line.startswith("Exception"):
                    return line.strip()[:500]
        return ""

    def reset(self) -> None:
        """Forget all topics and offsets: stop and delete the run directory."""
        self.down()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def pid(self) -> int | None:
        """The pid of our broker if it is alive (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return pid  # not Linux: trust the pid file
        return pid if str(self.config_file).encode() in cmdline else None

    def status(self) -> dict[str, object]:
        """Where things are; secure fields (paths, never the password) when configured."""
        pid = self.pid()
        info: dict[str, object] = {
            "running": pid is not None,
            "pid": pid,
            "bootstrap": self.bootstrap,
            "controller": f"{self.host}:{self.controller_port}",
            "version": self.version,
            "libs": str(self.libs_dir),
            "data": str(self.data_dir),
            "log": str(self.log_file),
            "secure": pid is not None and self.runs_secure(),
        }
        if info["secure"]:
            info.update(
                {
                    "secure_bootstrap": self.secure_bootstrap,
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanisms": list(SECURE_MECHANISMS),
                    "ca_file": str(self.ca_file),
                    "sasl_username": SASL_USER,
                    "password_file": str(self.password_file),
                }
            )
        return info

    # -- pieces --------------------------------------------------------------------

    def server_properties(self) -> str:
        """One combined broker+controller; internal topics with replication factor 1."""
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # Real clusters do not auto-create topics; neither does ours, so a missing
            # topic shows up in development as it would in production.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "60000",
            "delete.topic.enable": "true",
        }
        if self.secure:
            props.update(self._secure_properties())
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _secure_properties(self) -> dict[str, str]:
        """The SASL_SSL listener. Inter-broker and controller traffic stay PLAINTEXT."""
        password = read_secret(self.password_file)
        store_password = read_secret(self.keystore_password_file)
        name = "listener.name.sasl_ssl"
        # Kafka logs these as [hidden] (they are PASSWORD configs).
        plain_jaas = (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USER}="{password}";'
        )
        return {
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},"
                f"CONTROLLER://{self.host}:{self.controller_port},"
                f"SASL_SSL://{self.host}:{self.secure_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://{self.host}:{self.port},SASL_SSL://{self.host}:{self.secure_port}"
            ),
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": ",".join(SECURE_MECHANISMS),
            f"{name}.sasl.enabled.mechanisms": ",".join(SECURE_MECHANISMS),
            f"{name}.plain.sasl.jaas.config": plain_jaas,
            f"{name}.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{name}.ssl.keystore.type": "PKCS12",
            f"{name}.ssl.keystore.location": str(self.keystore_file),
            f"{name}.ssl.keystore.password": store_password,
            f"{name}.ssl.key.password": store_password,
            f"{name}.ssl.client.auth": "none",
        }

    def _upsert_scram(self) -> None:
        """Create (or reset) the SCRAM user over the PLAINTEXT listener."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import (
            AdminClient,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            SASL_USER,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            read_secret(self.password_file).encode(),
        )
        try:
            for future in admin.alter_user_scram_credentials([upsert]).values():
                future.result(timeout=30)
        except KafkaException as exc:
            raise SeqwatchError(f"cannot create the SCRAM user {SASL_USER!r}: {exc}") from exc

    def _wait_secure(self, timeout: float, alive: object) -> None:
        """Ready means a SCRAM login over TLS succeeds, not just an open port."""
        try:
            wait_until_ready(
                self.secure_bootstrap,
                timeout=timeout,
                alive=alive,
                client_config=self.client_settings().confluent(),
            )
        except SeqwatchError as exc:
            raise SeqwatchError(
                f"the SASL_SSL listener on {self.secure_bootstrap} did not accept our "
                f"SCRAM login ({exc}); see {self.log_file}"
            ) from None

    def _format(self, java: str) -> None:
        cluster_id = "-"
        while cluster_id.startswith("-"):  # a leading '-' reads as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        args = ["format", "-t", cluster_id, "-c", str(self.config_file), "--ignore-formatted"]
        password = ""
        argfile: Path | None = None
        if self.secure:
            # The SCRAM user goes into the metadata log at format time. Through a java
            # @argfile (mode 600) so that the password never shows in `ps`.
            password = read_secret(self.password_file)
            argfile = self.secure_dir / "format.args"
            write_private(
                argfile,
                f"--add-scram\nSCRAM-SHA-512=[name={SASL_USER},password={password}]\n",
            )
            args.append(f"@{argfile}")
        try:
            result = subprocess.run(
                self._java_command(java, "kafka.tools.StorageTool", *args),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if argfile is not None:
                argfile.unlink(missing_ok=True)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            text = detail[0].replace(password, "***") if password else detail[0]
            raise SeqwatchError(f"formatting Kafka storage in {self.data_dir} failed: {text}")

    def _java_command(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.run_dir}",
            "-cp",
            f"{self.libs_dir}/*",
            main,
            *args,
        ]


"""Short-lived JVMs: the C1 compiler and serial GC about halve keytool's start-up."""


def wait_until_ready(
    bootstrap: str,
    timeout: float,
    alive: object = None,
    client_config: dict[str, str] | None = None,
) -> None:
    """Readiness is an admin call that succeeds, not an open port."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + timeout
    config = {"bootstrap.servers": bootstrap, "log_level": "0", **(client_config or {})}
    admin = AdminClient(config)
    while True:
        if callable(alive) and not alive():
            raise SeqwatchError("the Kafka process exited during start-up; see its server.log")
        try:
            metadata = admin.list_topics(timeout=2)
            if metadata.brokers:
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise SeqwatchError(f"Kafka at {bootstrap} did not answer within {timeout:.0f} s")
        time.sleep(0.25)


def _check_ports_free(host: str, ports: list[int]) -> None:
    """Fail in one line before Java starts, rather than with a broker that exits.

    A port in the ephemeral range (Linux: 32768-60999) can be held at any moment by
    some client's outgoing connection; that is the usual culprit.
    """
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka binds
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise SeqwatchError(
                    f"port {host}:{port} is in use ({exc.strerror}); the local broker needs "
                    f"ports {', '.join(map(str, ports))}: stop what holds it or pick --port"
                ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _log4j2_properties(log_file: Path) -> str:
    return f"""\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.filePattern = {log_file}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""
