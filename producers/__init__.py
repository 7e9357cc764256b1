"""Producers: how events enter tidelake, like Kinesis Data Streams producers do on AWS.

- `parsing`: files (access logs, CSV, JSON lines) into records and rejects, without Kafka.
- `replay`: a file into a topic at its original pace, faster, at a fixed rate or at full speed.
- `generator`: a seeded synthetic clickstream with sessions, bots and an optional hot key.
- `agent`: follows a growing log like the Kinesis Agent (tail -F, rotation, checkpoints).
- `put_api`: PutRecord / PutRecords with Kinesis' limits and result shapes.
"""
