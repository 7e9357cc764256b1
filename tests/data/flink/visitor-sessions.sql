-- tidelake stream app 'visitor-sessions' as Flink SQL (tidelake stream export visitor-sessions --to flink-sql).
-- Reads clickstream.events, writes analytics.visitor-sessions exactly once (Kafka transactions: read it
-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL
-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.
-- What differs from tidelake's own runtimes: docs/flink.md.

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'pipeline.name' = 'tidelake-visitor-sessions';

CREATE TABLE `visitor_sessions_source` (
    `event_time` STRING,
    `page` STRING,
    `visitor_id` STRING,
    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),
    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),
    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.002' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clickstream.events',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'tidelake-flink-visitor-sessions',
    'properties.auto.offset.reset' = 'earliest',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '10000 ms',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

CREATE TABLE `visitor_sessions_sink` (
    `__message_key` STRING,
    `visitor_id` STRING,
    `window_start` STRING,
    `window_end` STRING,
    `count` BIGINT,
    `count_distinct_page` BIGINT,
    `first_page` STRING,
    `last_page` STRING,
    `duration_s` DOUBLE
) WITH (
    'connector' = 'kafka',
    'topic' = 'analytics.visitor-sessions',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.transaction.timeout.ms' = '600000',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'tidelake-flink-visitor-sessions',
    'key.format' = 'raw',
    'key.fields' = '__message_key',
    'value.format' = 'json',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE VIEW `visitor_sessions_events` AS
SELECT `__t`, `__ts`, UNIX_TIMESTAMP(DATE_FORMAT(`__ts`, 'yyyy-MM-dd HH:mm:ss')) * 1000000 + CAST(DATE_FORMAT(`__ts`, 'SSSSSS') AS BIGINT) AS `__us`, `page`, `visitor_id`
FROM `visitor_sessions_source`
WHERE `__t` IS NOT NULL;

INSERT INTO `visitor_sessions_sink`
SELECT
    CONCAT(COALESCE(CAST(`visitor_id` AS STRING), ''), '|', DATE_FORMAT(MIN(`__ts`), 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''')),
    `visitor_id`,
    DATE_FORMAT(MIN(`__ts`), 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    DATE_FORMAT(MAX(`__ts`) + INTERVAL '30' MINUTE, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    COUNT(*),
    COUNT(DISTINCT `page`),
    SUBSTRING(MIN(CONCAT(DATE_FORMAT(`__ts`, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), CAST(`page` AS STRING))) FROM 27),
    SUBSTRING(MAX(CONCAT(DATE_FORMAT(`__ts`, 'yyyy-MM-dd HH:mm:ss.SSSSSS'), CAST(`page` AS STRING))) FROM 27),
    CAST(MAX(`__us`) - MIN(`__us`) AS DOUBLE) / 1000000
FROM TABLE(SESSION(TABLE `visitor_sessions_events` PARTITION BY `visitor_id`, DESCRIPTOR(`__t`), INTERVAL '0 00:29:59.999' DAY TO SECOND(3)))
GROUP BY window_start, window_end, `visitor_id`;
