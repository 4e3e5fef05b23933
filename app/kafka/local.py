"""A real single-node Apache Kafka (KRaft) for development and tests, without Docker.

Kafka's jars come from Maven Central through the machine's Maven into a cache outside
the repository; the broker runs as a detached JVM whose pid, config, data and log live
in one run directory per port, so `up` can be idempotent and `down` can find it again.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from app.errors import ConfigError, SeqwatchError

KAFKA_VERSION = "4.1.1"
"""Kafka 4.1: KRaft only, and the oldest 4.x line that aiokafka 0.14 and librdkafka 2.x
both speak to without the protocol versions removed in 4.0."""


def cache_root() -> Path:
    """Where jars and run directories live: outside the repo, shared by clones."""
    env = os.environ.get("SEQWATCH_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "seqwatch"


@dataclass(frozen=True)
class LocalKafka:
    """One local broker+controller, identified by its client port."""

    host: str = "127.0.0.1"
    port: int = 9092
    version: str = KAFKA_VERSION
    heap: str = "1g"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

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

    # -- lifecycle ---------------------------------------------------------------

    def up(self, timeout: float = 90.0) -> str:
        """Start the broker unless it already runs; return what was done."""
        pid = self.pid()
        if pid is not None:
            wait_until_ready(self.bootstrap, timeout=timeout)
            return f"already running (pid {pid}) on {self.bootstrap}"
        java = require_tool("java", "Java 17+ is needed to run the local Kafka broker")
        self.ensure_libs()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties())
        (self.run_dir / "log4j2.properties").write_text(_log4j2_properties(self.log_file))
        if not (self.data_dir / "meta.properties").exists():
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
        except SeqwatchError:
            self.down()
            raise
        took = time.monotonic() - started
        return f"started Kafka {self.version} (pid {proc.pid}) on {self.bootstrap} in {took:.1f} s"

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
        pid = self.pid()
        return {
            "running": pid is not None,
            "pid": pid,
            "bootstrap": self.bootstrap,
            "controller": f"{self.host}:{self.controller_port}",
            "version": self.version,
            "libs": str(self.libs_dir),
            "data": str(self.data_dir),
            "log": str(self.log_file),
        }

    # -- pieces --------------------------------------------------------------------

    def ensure_libs(self) -> Path:
        """Resolve Kafka's runtime jars into the cache once; later calls are free."""
        marker = self.libs_dir / ".complete"
        if marker.exists():
            return self.libs_dir
        mvn = require_tool("mvn", "Maven is needed once to fetch Kafka from Maven Central")
        self.libs_dir.mkdir(parents=True, exist_ok=True)
        pom = resources.files("app.kafka").joinpath("pom.xml")
        with resources.as_file(pom) as pom_path:
            result = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom_path),
                    f"-Dkafka.version={self.version}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.libs_dir}",
                    "-DincludeScope=runtime",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0:
            last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise SeqwatchError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{self.version}: {last[0]}"
            )
        marker.touch()
        return self.libs_dir

    def server_properties(self) -> str:
        """One combined broker+controller; internal topics with replication factor 1."""
        props = {
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
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _format(self, java: str) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            self._java_command(
                java,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.config_file),
                "--ignore-formatted",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
            raise SeqwatchError(f"formatting Kafka storage in {self.data_dir} failed: {detail[0]}")

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


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"'{name}' not found on PATH: {why}")
    return path


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
