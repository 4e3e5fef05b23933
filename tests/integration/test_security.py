"""TLS + SASL against the real local broker started by `seqwatch kafka up --secure`.

The broker runs on its own port ($SEQWATCH_TEST_SECURE_PORT, default 29700; SASL_SSL on
port+2), so these tests never touch the session broker, and it is stopped at the end
when this module started it. Every CLI output and the worker log are checked for the
password: a credential must not leak through an error message or a log line.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from devtools.kafka import SASL_USER, LocalKafka, make_ca
from devtools.synth import fixed as events
from tests.helpers import run_seqwatch
from tests.integration.harness import TopicReader, WorkerProcess, produce

PORT = int(os.environ.get("SEQWATCH_TEST_SECURE_PORT", "29700"))


@dataclass
class Secure:
    broker: LocalKafka
    password: str
    up_output: str

    def settings(self, mechanism: str = "SCRAM-SHA-512") -> KafkaSettings:
        return self.broker.client_settings(mechanism)

    def env(self, mechanism: str = "SCRAM-SHA-512", **overrides: str) -> dict[str, str]:
        """What a user exports, after `seqwatch kafka up --secure` told them how."""
        env = {
            "SEQWATCH_BOOTSTRAP": self.broker.secure_bootstrap,
            "SEQWATCH_SECURITY_PROTOCOL": "SASL_SSL",
            "SEQWATCH_SASL_MECHANISM": mechanism,
            "SEQWATCH_SASL_USERNAME": SASL_USER,
            "SEQWATCH_SASL_PASSWORD": self.password,
            "SEQWATCH_SSL_CAFILE": str(self.broker.ca_file),
        }
        env.update(overrides)
        return env

    def assert_no_secret(self, *outputs: bytes | str) -> None:
        for out in outputs:
            text = out.decode(errors="replace") if isinstance(out, bytes) else out
            assert self.password not in text, "the SASL password leaked into output"


@pytest.fixture(scope="module")
def secure() -> Iterator[Secure]:
    broker = LocalKafka(port=PORT, secure=True)
    started = broker.pid() is None or not broker.runs_secure()
    result = run_seqwatch("kafka", "up", "--secure", "--port", str(PORT), timeout=240)
    try:
        assert result.returncode == 0, result.stderr.decode()
        password = broker.password_file.read_text().strip()
        yield Secure(broker, password, result.stdout.decode() + result.stderr.decode())
    finally:
        if started:
            broker.down()


def _one_error_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The whole of stderr, which must be exactly one `seqwatch: ...` line and exit 2."""
    err = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqwatch: "), err
    assert "Traceback" not in err
    return lines[0]


def _spec(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "topics.toml"
    path.write_text(
        f'[defaults]\nreplication_factor = 1\n[topics."{name}"]\nrole = "input"\npartitions = 2\n'
    )
    return path


def test_up_secure_says_where_everything_is_but_never_the_password(secure: Secure) -> None:
    broker = secure.broker
    out = secure.up_output
    secure.assert_no_secret(out)
    assert f"SASL_SSL on {broker.secure_bootstrap}" in out
    for line in broker.exports():
        assert line in out
    assert f'SEQWATCH_SASL_PASSWORD="$(cat {broker.password_file})"' in out

    assert stat.S_IMODE(broker.password_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(broker.config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(broker.secure_dir.stat().st_mode) == 0o700
    assert broker.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")

    status = run_seqwatch("kafka", "status", "--port", str(PORT))
    assert status.returncode == 0, status.stderr.decode()
    text = status.stdout.decode()
    for needle in (broker.secure_bootstrap, str(broker.ca_file), SASL_USER):
        assert needle in text
    assert str(broker.password_file) in text
    as_json = run_seqwatch("kafka", "status", "--port", str(PORT), "--json")
    info = orjson.loads(as_json.stdout)
    assert info["secure"] is True
    assert info["secure_bootstrap"] == broker.secure_bootstrap
    assert info["password_file"] == str(broker.password_file)
    secure.assert_no_secret(status.stdout, as_json.stdout)

    again = run_seqwatch("kafka", "up", "--secure", "--port", str(PORT))
    assert again.returncode == 0 and b"already running" in again.stdout
    plain_up = run_seqwatch("kafka", "up", "--port", str(PORT))
    assert plain_up.returncode == 0 and b"already running" in plain_up.stdout
    secure.assert_no_secret(again.stdout, plain_up.stdout)


def test_password_stays_out_of_repr_and_describe(secure: Secure) -> None:
    settings = secure.settings()
    assert secure.password not in repr(settings)
    assert secure.password not in settings.describe()
    assert secure.password not in repr(settings.faust_credentials())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_topics_apply_over_sasl_ssl(
    secure: Secure, tmp_path: Path, unique: str, mechanism: str
) -> None:
    name = f"secure-{mechanism.lower()}-{unique}"
    result = run_seqwatch(
        "topics", "apply", "--file", str(_spec(tmp_path, name)), env=secure.env(mechanism)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert f"created  {name}".encode() in result.stdout
    secure.assert_no_secret(result.stdout, result.stderr)
    _, metadata = kadmin.connect(secure.settings(mechanism))
    assert len(metadata.topics[name].partitions) == 2


def test_replay_and_alerts_over_sasl_ssl(secure: Secure, tmp_path: Path, unique: str) -> None:
    topic = f"secure-replay-{unique}"
    docs = [{"n": i, "alert": {"id": f"{unique}-{i}"}} for i in range(25)]
    source = tmp_path / "records.ndjson"
    source.write_bytes(b"\n".join(orjson.dumps(d) for d in docs) + b"\n")

    replayed = run_seqwatch("replay", str(source), "--topic", topic, env=secure.env())
    assert replayed.returncode == 0, replayed.stderr.decode()
    printed = run_seqwatch("alerts", "--topic", topic, "--timeout", "2", env=secure.env("PLAIN"))
    assert printed.returncode == 0, printed.stderr.decode()
    got = [orjson.loads(line) for line in printed.stdout.splitlines() if line.strip()]
    assert sorted(got, key=lambda d: d["n"]) == docs
    secure.assert_no_secret(replayed.stdout, replayed.stderr, printed.stdout, printed.stderr)


def test_worker_alerts_over_sasl_ssl(
    secure: Secure, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in secure.env().items():
        monkeypatch.setenv(key, value)  # the worker gets its credentials from the environment
    settings = secure.settings()
    inputs, alerts = f"winlogbeat-{unique}", f"alerts-{unique}"
    log = tmp_path / "worker.log"
    worker = WorkerProcess(
        settings,
        tmp_path / "state",
        log,
        "--input-topics",
        inputs,
        "--alerts-topic",
        alerts,
        "--deadletter-topic",
        f"deadletter-{unique}",
        "--group-id",
        f"group-{unique}",
        "--partitions",
        "4",
    )
    worker.start()
    try:
        worker.wait_ready()
        entity = events.entity(1, "tls")
        produce(settings, inputs, [events.start(entity, 0), events.network(entity, 300)])
        reader = TopicReader(settings, alerts)
        reader.wait_for(lambda recs: len(recs) >= 1, alive=worker.check_alive)
        reader.poll(1.0)
        values = reader.values()
        reader.close()
        assert [v["process"]["entity_id"] for v in values] == [entity]
    finally:
        assert worker.stop() == 0, worker.log_tail()
    text = log.read_text(errors="replace")
    assert f"Authenticated as {SASL_USER} via SCRAM-SHA-512" in text, "Faust's aiokafka logged in"
    secure.assert_no_secret(text)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_wrong_password_is_one_line(secure: Secure, tmp_path: Path, mechanism: str) -> None:
    wrong = "not-the-password-" + mechanism
    env = secure.env(mechanism, SEQWATCH_SASL_PASSWORD=wrong)
    result = run_seqwatch("topics", "apply", "--file", str(_spec(tmp_path, "never")), env=env)
    line = _one_error_line(result)
    assert line.startswith(
        f"seqwatch: cannot reach Kafka at {secure.broker.secure_bootstrap} (authentication failed: "
    ), line
    assert wrong not in line
    secure.assert_no_secret(result.stdout, result.stderr)


def test_worker_with_wrong_password_is_one_line(secure: Secure, tmp_path: Path) -> None:
    env = secure.env(SEQWATCH_SASL_PASSWORD="wrong-password-for-the-worker")
    result = run_seqwatch(
        "worker", "--data-dir", str(tmp_path / "state"), "--input-topics", "never", env=env
    )
    line = _one_error_line(result)
    assert "(authentication failed: " in line, line
    assert "wrong-password-for-the-worker" not in result.stdout.decode() + line


def test_untrusted_certificate_is_one_line(secure: Secure, tmp_path: Path) -> None:
    other_ca = make_ca(tmp_path / "other.p12", "changeit", "some other CA")
    result = run_seqwatch(
        "alerts", "--timeout", "1", env=secure.env(SEQWATCH_SSL_CAFILE=str(other_ca))
    )
    line = _one_error_line(result)
    assert "(TLS handshake failed: certificate verify failed" in line, line
    secure.assert_no_secret(result.stdout, result.stderr)


def test_password_never_reaches_the_broker_log(secure: Secure) -> None:
    for path in (secure.broker.log_file, secure.broker.run_dir / "stdout.log"):
        secure.assert_no_secret(path.read_bytes())


def test_a_run_dir_switches_between_plain_and_secure(tmp_path: Path, unique: str) -> None:
    """A data dir formatted by a plain `up` gets its SCRAM user when it goes secure, and back.

    On its own broker (port+4: 29704-29706 by default), deleted again at the end.
    """
    port = str(PORT + 4)
    broker = LocalKafka(port=PORT + 4)
    if broker.pid() is not None:
        pytest.skip(f"a broker we did not start runs on {port}")
    broker.reset()
    try:
        plain = run_seqwatch("kafka", "up", "--port", port, timeout=240)
        assert plain.returncode == 0, plain.stderr.decode()
        assert b"SASL_SSL" not in plain.stdout

        upgraded = run_seqwatch("kafka", "up", "--secure", "--port", port, timeout=240)
        assert upgraded.returncode == 0, upgraded.stderr.decode()
        assert b"restarted to add the SASL_SSL listener" in upgraded.stdout
        password = broker.password_file.read_text().strip()
        assert password not in upgraded.stdout.decode()
        name = f"switched-{unique}"
        env = {
            "SEQWATCH_BOOTSTRAP": broker.secure_bootstrap,
            "SEQWATCH_SECURITY_PROTOCOL": "SASL_SSL",
            "SEQWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
            "SEQWATCH_SASL_USERNAME": SASL_USER,
            "SEQWATCH_SASL_PASSWORD": password,
            "SEQWATCH_SSL_CAFILE": str(broker.ca_file),
        }
        applied = run_seqwatch("topics", "apply", "--file", str(_spec(tmp_path, name)), env=env)
        assert applied.returncode == 0, applied.stderr.decode()

        assert run_seqwatch("kafka", "down", "--port", port).returncode == 0
        back = run_seqwatch("kafka", "up", "--port", port, timeout=240)
        assert back.returncode == 0, back.stderr.decode()
        info = orjson.loads(run_seqwatch("kafka", "status", "--port", port, "--json").stdout)
        assert info["running"] is True and info["secure"] is False
        _, metadata = kadmin.connect(KafkaSettings(bootstrap=broker.bootstrap))
        assert name in metadata.topics, "topics survive the switches"
    finally:
        broker.reset()
