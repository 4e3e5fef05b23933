"""The RocksDB store, wiped per partition at every rebalance so it never holds more than
the committed changelog (F13).

RocksDB is written as events are processed, before their transaction commits. A
rebalance recreates the transactional producers, which aborts a transaction that was
still open (a batch whose events were not yet acknowledged when the revocation commit
ran); its changelog writes vanish from Kafka but stay in RocksDB, and the events, read
again from the committed offsets, meet state that already holds them (duplicates, so no
write, so a changelog without them: the next restore elsewhere loses those pending
starts). Kafka Streams' rule for exactly-once without a checkpoint is to wipe the local
state of a task whose transaction may be aborted; seqwatch already does so after an
unclean stop (`run.discard_unclean_state`), and this does it at every rebalance. It
costs nothing extra: Faust restores every assigned partition from offset -1 at every
rebalance anyway (F12: its persisted offsets are never written under exactly-once).
Registered as `seqwatchdb://` in the `faust.stores` entry point group.
"""

from __future__ import annotations

import gc
import shutil
from typing import Any

from faust.stores import rocksdb


class Store(rocksdb.Store):
    async def on_rebalance(
        self,
        assigned: set[Any],
        revoked: set[Any],
        newly_assigned: set[Any],
        generation_id: int = 0,
    ) -> None:
        topics = self.table.changelog_topic.topics
        standbys = self.app.assignor.assigned_standbys()
        async with self.db_lock:
            active = {tp.partition for tp in assigned if tp.topic in topics and tp not in standbys}
            for partition in active:
                self._dbs.pop(partition, None)
            self._key_index.clear()
            gc.collect()  # closes the popped databases (rocksdict closes on release)
            for partition in active:
                path = self.partition_path(partition)
                if path.exists():
                    self.logger.info("wiping %s before its restore from the changelog", path)
                    shutil.rmtree(path)
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
