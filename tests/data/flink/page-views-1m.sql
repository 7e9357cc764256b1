-- tidelake stream app 'page-views-1m' as Flink SQL (tidelake stream export page-views-1m --to flink-sql).
-- Reads clickstream.events, writes analytics.page-views-1m exactly once (Kafka transactions: read it
-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL
-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.
-- What differs from tidelake's own runtimes: docs/flink.md.

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'pipeline.name' = 'tidelake-page-views-1m';

CREATE TABLE `page_views_1m_source` (
    `event_time` STRING,
    `page` STRING,
    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),
    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),
    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.001' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clickstream.events',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'tidelake-flink-page-views-1m',
    'properties.auto.offset.reset' = 'earliest',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '10000 ms',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

CREATE TABLE `page_views_1m_sink` (
    `__message_key` STRING,
    `page` STRING,
    `window_start` STRING,
    `window_end` STRING,
    `count` BIGINT
) WITH (
    'connector' = 'kafka',
    'topic' = 'analytics.page-views-1m',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.transaction.timeout.ms' = '600000',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'tidelake-flink-page-views-1m',
    'key.format' = 'raw',
    'key.fields' = '__message_key',
    'value.format' = 'json',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE VIEW `page_views_1m_events` AS
SELECT `__t`, `__ts`, `page`
FROM `page_views_1m_source`
WHERE `__t` IS NOT NULL;

INSERT INTO `page_views_1m_sink`
SELECT
    CONCAT(COALESCE(CAST(`page` AS STRING), ''), '|', DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''')),
    `page`,
    DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z'''),
    COUNT(*)
FROM TABLE(TUMBLE(TABLE `page_views_1m_events`, DESCRIPTOR(`__t`), INTERVAL '1' MINUTE))
GROUP BY window_start, window_end, `page`;
