"""The relay's logic, one module per responsibility.

- `harmonise`: a laser message → a shot envelope (shot numbers, runs, times), no I/O.
- `counters`: the counters a restarted relay goes on from, and the relay's message counts.
- `shipper`: the Kafka shipper, in a process of its own, fed from the durable log.
- `loop`: the ZeroMQ loop, `Relay` (inputs, log, PUB, snapshot, heartbeats).
- `status`: the live status the relay page shows.
- `replay`: logged envelopes produced to Kafka again.
"""
