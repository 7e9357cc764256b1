-- tidelake stream app 'error-rate-1m' as Flink SQL (tidelake stream export error-rate-1m --to flink-sql).
-- Reads clickstream.events, writes analytics.error-rate-1m exactly once (Kafka transactions: read it
-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL
-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.
-- What differs from tidelake's own runtimes: docs/flink.md.

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'pipeline.name' = 'tidelake-error-rate-1m';

CREATE TABLE `error_rate_1m_source` (
    `event_time` STRING,
    `status` INT,
    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),
    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),
    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.001' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clickstream.events',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'tidelake-flink-error-rate-1m',
    'properties.auto.offset.reset' = 'earliest',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '10000 ms',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

CREATE TABLE `error_rate_1m_sink` (
    `__message_key` STRING,
    `window_start` STRING,
    `window_end` STRING,
    `count` BIGINT,
    `sum_is_error` BIGINT,
    `avg_is_error` DOUBLE,
    `sum_is_server_error` BIGINT,
    `avg_is_server_error` DOUBLE
) WITH (
    'connector' = 'kafka',
    'topic' = 'analytics.error-rate-1m',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.transaction.timeout.ms' = '600000',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'tidelake-flink-error-rate-1m',
    'key.format' = 'raw',
    'key.fields' = '__message_key',
    'value.format' = 'json',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE VIEW `error_rate_1m_events` AS
SELECT `__t`, `__ts`, `status`, CASE WHEN `status` IS NULL THEN CAST(NULL AS INT) WHEN `status` >= 400 THEN 1 ELSE 0 END AS `is_error`, CASE WHEN `status` IS NULL THEN CAST(NULL AS INT) WHEN `status` >= 500 THEN 1 ELSE 0 END AS `is_server_error`
FROM `error_rate_1m_source`
WHERE `__t` IS NOT NULL;

INSERT INTO `error_rate_1m_sink`
SELECT
    CONCAT('', '|', DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''')),
    DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    COUNT(*),
    SUM(TRY_CAST(`is_error` AS BIGINT)),
    AVG(TRY_CAST(`is_error` AS DOUBLE)),
    SUM(TRY_CAST(`is_server_error` AS BIGINT)),
    AVG(TRY_CAST(`is_server_error` AS DOUBLE))
FROM TABLE(TUMBLE(TABLE `error_rate_1m_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end;
