"""The watcher's logic, one module per responsibility.

- `convert`: Kafka record → MongoDB document or dead letter (pure).
- `writer`: the batch writer thread (events, dead letters, shot and time index, MongoDB retries).
- `loop`: the Kafka consumer loop, `Watcher` (poll, commit, rebalance, undecodable partitions).
- `status`: the live status the watcher page shows.
- `replay`: dead letters stored once their route accepts them.
"""
