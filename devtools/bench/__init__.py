"""`seqwatch bench`: how fast one worker is, measured against what the Kafka client delivers.

Why a package of small modules: each phase (loading the topics, the bare-consumer baseline,
a worker end to end, detection latency at a steady load, the engine alone) has its own
failure modes and timing rules, and the pure parts (medians, percentiles, the table and the
JSON line, the pair schedule) are unit-tested without a broker.

- `load`: bench topic names, creating them with explicit retention, producing the stream.
- `baseline`: a bare confluent-kafka consumer over the same topics (consume-only and +orjson).
- `alerts`: a read_committed reader of an alerts topic in a thread, with read times.
- `worker_run`: one `seqwatch worker` subprocess end to end, timed from its ingest assignment.
- `latency`: a paced producer of background traffic plus MSBuild pairs, latency per alert.
- `engine_run`: the `seqwatch detect` engine in-process over the same records.
- `report`: medians, percentiles, the rich table and the JSON object.
- `runner`: the order of the phases, the broker, clean-up.
"""
