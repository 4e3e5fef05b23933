"""The local broker's TLS material and secrets, made with the JDK's keytool.

Java is needed for Kafka anyway, so nothing else is installed: a private CA signs the
broker's certificate, the CA's private key is thrown away once it has, and every secret
lives in a file of mode 600 that is never printed.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import string
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.errors import SeqwatchError
from devtools.kafka.artifacts import require_tool


@dataclass(frozen=True)
class SecureFiles:
    """Where one broker's secrets and certificates live."""

    directory: Path
    password: Path
    keystore_password: Path
    ca: Path
    keystore: Path


def ensure_broker_material(secure: SecureFiles, host: str, java: str) -> None:
    """Passwords and certificates of the SASL_SSL listener, made once and kept."""
    _private_dir(secure.directory)
    for path in (secure.password, secure.keystore_password):
        if not path.exists():
            write_private(path, _new_password() + "\n")
    if secure.ca.exists() and secure.keystore.exists():
        return
    keytool = find_keytool(java)
    store_password = read_secret(secure.keystore_password)
    with tempfile.TemporaryDirectory(dir=secure.directory) as tmp:
        work = Path(tmp)
        ca_store = work / "ca.p12"
        ca_pem = make_ca(ca_store, store_password, "seqwatch local Kafka CA", keytool)
        broker_store = work / "broker.p12"
        _keytool_run(
            keytool,
            store_password,
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-validity",
            "3650",
            "-dname",
            "CN=localhost, O=seqwatch",
            "-keystore",
            str(broker_store),
        )
        csr, signed = work / "broker.csr", work / "broker.pem"
        _keytool_run(
            keytool,
            store_password,
            "-certreq",
            "-alias",
            "broker",
            "-keystore",
            str(broker_store),
            "-file",
            str(csr),
        )
        _keytool_run(
            keytool,
            store_password,
            "-gencert",
            "-rfc",
            "-alias",
            "ca",
            "-keystore",
            str(ca_store),
            "-infile",
            str(csr),
            "-outfile",
            str(signed),
            "-validity",
            "3650",
            "-ext",
            f"SAN={subject_alt_names(host)}",
            "-ext",
            "KeyUsage:critical=digitalSignature",
            "-ext",
            "ExtendedKeyUsage=serverAuth",
        )
        # The CA first, so that keytool can build the chain of the signed reply.
        for alias, cert in (("ca", ca_pem), ("broker", signed)):
            _keytool_run(
                keytool,
                store_password,
                "-importcert",
                "-noprompt",
                "-alias",
                alias,
                "-file",
                str(cert),
                "-keystore",
                str(broker_store),
            )
        os.chmod(broker_store, 0o600)
        os.replace(broker_store, secure.keystore)
        # The CA's private key dies with `work`: nothing can sign another certificate.
        shutil.copyfile(ca_pem, secure.ca)


def subject_alt_names(host: str) -> str:
    names = {"dns:localhost", "ip:127.0.0.1"}
    try:
        ipaddress.ip_address(host)
        names.add(f"ip:{host}")
    except ValueError:
        names.add(f"dns:{host}")
    return ",".join(sorted(names))


def make_ca(store: Path, store_password: str, name: str, keytool: str | None = None) -> Path:
    """A self-signed CA in a PKCS12 keystore; returns its certificate as PEM next to it."""
    keytool = keytool or find_keytool()
    _keytool_run(
        keytool,
        store_password,
        "-genkeypair",
        "-alias",
        "ca",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-validity",
        "3650",
        "-dname",
        f"CN={name}, O=seqwatch",
        "-ext",
        "BasicConstraints:critical=ca:true",
        "-ext",
        "KeyUsage:critical=keyCertSign,cRLSign",
        "-keystore",
        str(store),
    )
    pem = store.with_suffix(".pem")
    _keytool_run(
        keytool,
        store_password,
        "-exportcert",
        "-rfc",
        "-alias",
        "ca",
        "-keystore",
        str(store),
        "-file",
        str(pem),
    )
    return pem


def find_keytool(java: str | None = None) -> str:
    """The keytool of the JDK that runs Kafka, else the one on PATH."""
    java = java or shutil.which("java")
    beside = Path(java).resolve().parent / "keytool" if java else None
    if beside is not None and beside.exists():
        return str(beside)
    return require_tool("keytool", "the JDK's keytool makes the broker's TLS certificates")


_KEYTOOL_JVM = ("-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC", "-J-XX:-UsePerfData")


def _keytool_run(keytool: str, store_password: str, *args: str) -> None:
    """Run keytool with the store password in its environment, never on its command line."""
    result = subprocess.run(
        [
            keytool,
            *_KEYTOOL_JVM,
            *args,
            "-storetype",
            "PKCS12",
            "-storepass:env",
            "SEQWATCH_KEYSTORE_PASS",
        ],
        env={**os.environ, "SEQWATCH_KEYSTORE_PASS": store_password},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["?"]
        raise SeqwatchError(f"keytool {args[0]} failed: {detail[0].replace(store_password, '***')}")


def _new_password() -> str:
    """Letters and digits only: safe inside JAAS quotes, SCRAM specs and shells."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


def read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise SeqwatchError(f"cannot read {path}: {exc.strerror}") from exc


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, whatever the umask, even when it existed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
