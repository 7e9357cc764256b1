"""Delivery streams (the Firehose part): Kafka topics -> buffered, partitioned, exactly-once Parquet
in the lake. Entry points: `sinks.stream.DeliveryStream`, `sinks.config`, `sinks.compaction`."""
