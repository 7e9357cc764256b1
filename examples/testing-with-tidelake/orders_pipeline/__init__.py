"""A small order pipeline, as a team would have it on AWS: a producer writing orders to Kinesis, a
Firehose transform Lambda, a Kinesis Data Analytics app counting orders per country and minute,
and an Athena report. Its tests (tests/test_pipeline.py) run it all against tidelake."""
