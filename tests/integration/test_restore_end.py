"""F10's stable end, against the real broker: a restore may end only where no transaction
is open on the changelog partition or still writing its markers."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from confluent_kafka import Producer

from app.kafka import admin as kadmin
from app.kafka.settings import KafkaSettings
from app.worker.faust_ext.transport import stable_ends


async def test_the_end_is_stable_only_once_the_transaction_on_it_is_resolved(
    kafka: KafkaSettings, unique: str
) -> None:
    topic = f"changelog-{unique}"
    client, _ = kadmin.connect(kafka)
    kadmin.create_topic(client, topic, 2)
    producer = Producer({**kafka.confluent(), "transactional.id": f"txn-{unique}"})
    producer.init_transactions(30)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, isolation_level="read_committed")
    await consumer.start()
    open_tp, quiet_tp = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        assert await stable_ends(consumer, [open_tp, quiet_tp]) == {open_tp: 0, quiet_tp: 0}
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, key=b"k", value=str(i).encode(), partition=0)
        producer.flush(30)  # in the log, above the last stable offset
        ends = await stable_ends(consumer, [open_tp, quiet_tp])
        assert ends == {open_tp: None, quiet_tp: 0}, "an open transaction is not an end"
        producer.commit_transaction(30)
        # The commit returns once the coordinator has decided; the partition's marker is
        # written after that. Until then the end is not stable: the race a restore that
        # trusted the last stable offset lost pending starts to.
        deadline = time.monotonic() + 30
        while (end := (await stable_ends(consumer, [open_tp]))[open_tp]) is None:
            assert time.monotonic() < deadline, "the marker never landed"
            await asyncio.sleep(0.01)
        assert end == 4, "three records and the commit marker"
        assert (await stable_ends(consumer, [quiet_tp])) == {quiet_tp: 0}
    finally:
        await consumer.stop()
