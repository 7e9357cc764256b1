-- tidelake stream app 'active-visitors-5m' as Flink SQL (tidelake stream export active-visitors-5m --to flink-sql).
-- Reads clickstream.events, writes analytics.active-visitors-5m exactly once (Kafka transactions: read it
-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL
-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.
-- What differs from tidelake's own runtimes: docs/flink.md.

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'pipeline.name' = 'tidelake-active-visitors-5m';

CREATE TABLE `active_visitors_5m_source` (
    `event_time` STRING,
    `is_bot` BOOLEAN,
    `visitor_id` STRING,
    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),
    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),
    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.001' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clickstream.events',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'tidelake-flink-active-visitors-5m',
    'properties.auto.offset.reset' = 'earliest',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '10000 ms',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

CREATE TABLE `active_visitors_5m_sink` (
    `__message_key` STRING,
    `window_start` STRING,
    `window_end` STRING,
    `count_distinct_visitor_id` BIGINT,
    `count` BIGINT
) WITH (
    'connector' = 'kafka',
    'topic' = 'analytics.active-visitors-5m',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.transaction.timeout.ms' = '600000',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'tidelake-flink-active-visitors-5m',
    'key.format' = 'raw',
    'key.fields' = '__message_key',
    'value.format' = 'json',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE VIEW `active_visitors_5m_events` AS
SELECT `__t`, `__ts`, `is_bot`, `visitor_id`
FROM `active_visitors_5m_source`
WHERE `__t` IS NOT NULL AND `is_bot` = FALSE;

INSERT INTO `active_visitors_5m_sink`
SELECT
    CONCAT('', '|', DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''')),
    DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    COUNT(DISTINCT `visitor_id`),
    COUNT(*)
FROM TABLE(HOP(TABLE `active_visitors_5m_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE, INTERVAL '5' MINUTE))
GROUP BY window_start, window_end;
