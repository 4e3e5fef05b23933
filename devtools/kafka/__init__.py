"""The local single-node Kafka (KRaft) of development and tests: jars from Maven Central
(`artifacts`), the broker process (`broker`), its TLS material (`pki`)."""

from devtools.kafka.artifacts import KAFKA_VERSION
from devtools.kafka.broker import SASL_USER, SECURE_MECHANISMS, LocalKafka
from devtools.kafka.pki import make_ca

__all__ = ["KAFKA_VERSION", "SASL_USER", "SECURE_MECHANISMS", "LocalKafka", "make_ca"]
