"""How every client reaches the cluster: bootstrap servers plus TLS/SASL.

One dataclass feeds confluent-kafka (producer, consumer, admin) and aiokafka/Faust,
so a setting cannot reach one client and miss another. Secrets are never rendered
by `__repr__` or `describe()`, so they cannot leak into logs or error messages.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from app.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        errors = self.problems()
        if errors:
            raise ConfigError("; ".join(errors))

    def problems(self) -> list[str]:
        out: list[str] = []
        if not self.bootstrap.strip():
            out.append("--bootstrap is empty")
        if self.security_protocol not in PROTOCOLS:
            out.append(
                f"--security-protocol {self.security_protocol!r} "
                f"is not one of {', '.join(PROTOCOLS)}"
            )
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in MECHANISMS:
                out.append(f"--sasl-mechanism must be one of {', '.join(MECHANISMS)}")
            if not self.sasl_username or self.sasl_password is None:
                out.append("SASL needs --sasl-username and SEQWATCH_SASL_PASSWORD")
        return out

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """Safe for logs: no secrets."""
        auth = f" {self.sasl_mechanism} as {self.sasl_username}" if self.sasl_mechanism else ""
        return f"{self.bootstrap} ({self.security_protocol}{auth})"

    def confluent(self) -> dict[str, Any]:
        """librdkafka properties for confluent-kafka clients."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self.sasl_password
        if self.uses_tls:
            if self.ssl_cafile:
                conf["ssl.ca.location"] = self.ssl_cafile
            if self.ssl_certfile:
                conf["ssl.certificate.location"] = self.ssl_certfile
            if self.ssl_keyfile:
                conf["ssl.key.location"] = self.ssl_keyfile
            if self.ssl_key_password:
                conf["ssl.key.password"] = self.ssl_key_password
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile, self.ssl_key_password)
        return ctx

    def faust_broker(self, scheme: str = "kafka") -> str:
        """Faust's broker URL; the scheme names the transport (`seqwatch` for the worker's)."""
        hosts = (h.strip() for h in self.bootstrap.split(","))
        return ";".join(f"{scheme}://{h}" for h in hosts if h)

    def faust_credentials(self) -> Any:
        """faust.SASLCredentials / SSLCredentials, or None for PLAINTEXT."""
        import faust

        if self.security_protocol.startswith("SASL"):
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self.sasl_password,
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.uses_tls:
            return faust.SSLCredentials(self.ssl_context())
        return None
