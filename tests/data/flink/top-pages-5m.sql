-- tidelake stream app 'top-pages-5m' as Flink SQL (tidelake stream export top-pages-5m --to flink-sql).
-- Reads clickstream.events, writes analytics.top-pages-5m exactly once (Kafka transactions: read it
-- with isolation.level=read_committed). Run it with a Flink SQL client that has the Kafka SQL
-- connector (flink-sql-connector-kafka) on its classpath: sql-client.sh -f FILE.
-- What differs from tidelake's own runtimes: docs/flink.md.

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '10000 ms';

SET 'execution.checkpointing.mode' = 'EXACTLY_ONCE';

SET 'pipeline.name' = 'tidelake-top-pages-5m';

CREATE TABLE `top_pages_5m_source` (
    `event_time` STRING,
    `is_bot` BOOLEAN,
    `page` STRING,
    `__ts` AS TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)),
    `__t` AS CAST(TRY_CAST(REPLACE(REPLACE(`event_time`, 'T', ' '), 'Z', '') AS TIMESTAMP(6)) AS TIMESTAMP(3)),
    WATERMARK FOR `__t` AS `__t` - INTERVAL '5.001' SECOND
) WITH (
    'connector' = 'kafka',
    'topic' = 'clickstream.events',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.group.id' = 'tidelake-flink-top-pages-5m',
    'properties.auto.offset.reset' = 'earliest',
    'properties.isolation.level' = 'read_committed',
    'scan.startup.mode' = 'group-offsets',
    'scan.watermark.idle-timeout' = '10000 ms',
    'format' = 'json',
    'json.ignore-parse-errors' = 'true',
    'json.fail-on-missing-field' = 'false'
);

CREATE TABLE `top_pages_5m_sink` (
    `__message_key` STRING,
    `window_start` STRING,
    `window_end` STRING,
    `count` BIGINT,
    `top_10` ARRAY<ROW<`page` STRING, `count` BIGINT>>
) WITH (
    'connector' = 'kafka',
    'topic' = 'analytics.top-pages-5m',
    'properties.bootstrap.servers' = '127.0.0.1:9092',
    'properties.transaction.timeout.ms' = '600000',
    'sink.delivery-guarantee' = 'exactly-once',
    'sink.transactional-id-prefix' = 'tidelake-flink-top-pages-5m',
    'key.format' = 'raw',
    'key.fields' = '__message_key',
    'value.format' = 'json',
    'value.fields-include' = 'EXCEPT_KEY'
);

CREATE VIEW `top_pages_5m_events` AS
SELECT `__t`, `__ts`, `is_bot`, `page`
FROM `top_pages_5m_source`
WHERE `__t` IS NOT NULL AND `is_bot` = FALSE;

CREATE VIEW `top_pages_5m_windows` AS
SELECT
    window_start,
    window_end,
    DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''') AS `__start`,
    DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss.SSSSSS''Z''') AS `__end`,
    COUNT(*) AS `__a0`
FROM TABLE(TUMBLE(TABLE `top_pages_5m_events`, DESCRIPTOR(`__t`), INTERVAL '5' MINUTE))
GROUP BY window_start, window_end;

CREATE VIEW `top_pages_5m_top_counts` AS
SELECT
    window_start,
    window_end,
    window_time,
    `page` AS `__v`,
    CASE WHEN `page` IS NULL THEN 1 ELSE 0 END AS `__null`,
    COUNT(*) AS `__c`
FROM TABLE(TUMBLE(TABLE `top_pages_5m_events`, DESCRIPTOR(`__t`), INTERVAL '5' MINUTE))
GROUP BY window_start, window_end, window_time, `page`;

CREATE VIEW `top_pages_5m_top_ranked` AS
SELECT * FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY `__null`, `__c` DESC, `__v`) AS `__rank`
    FROM `top_pages_5m_top_counts`)
WHERE `__rank` <= 10;

CREATE VIEW `top_pages_5m_top` AS
SELECT
    window_start,
    window_end,
    COUNT(`__v`) AS `__n`,
    MAX(CASE WHEN `__rank` = 1 THEN `__v` END) AS `__v1`,
    MAX(CASE WHEN `__rank` = 1 THEN `__c` END) AS `__c1`,
    MAX(CASE WHEN `__rank` = 2 THEN `__v` END) AS `__v2`,
    MAX(CASE WHEN `__rank` = 2 THEN `__c` END) AS `__c2`,
    MAX(CASE WHEN `__rank` = 3 THEN `__v` END) AS `__v3`,
    MAX(CASE WHEN `__rank` = 3 THEN `__c` END) AS `__c3`,
    MAX(CASE WHEN `__rank` = 4 THEN `__v` END) AS `__v4`,
    MAX(CASE WHEN `__rank` = 4 THEN `__c` END) AS `__c4`,
    MAX(CASE WHEN `__rank` = 5 THEN `__v` END) AS `__v5`,
    MAX(CASE WHEN `__rank` = 5 THEN `__c` END) AS `__c5`,
    MAX(CASE WHEN `__rank` = 6 THEN `__v` END) AS `__v6`,
    MAX(CASE WHEN `__rank` = 6 THEN `__c` END) AS `__c6`,
    MAX(CASE WHEN `__rank` = 7 THEN `__v` END) AS `__v7`,
    MAX(CASE WHEN `__rank` = 7 THEN `__c` END) AS `__c7`,
    MAX(CASE WHEN `__rank` = 8 THEN `__v` END) AS `__v8`,
    MAX(CASE WHEN `__rank` = 8 THEN `__c` END) AS `__c8`,
    MAX(CASE WHEN `__rank` = 9 THEN `__v` END) AS `__v9`,
    MAX(CASE WHEN `__rank` = 9 THEN `__c` END) AS `__c9`,
    MAX(CASE WHEN `__rank` = 10 THEN `__v` END) AS `__v10`,
    MAX(CASE WHEN `__rank` = 10 THEN `__c` END) AS `__c10`
FROM `top_pages_5m_top_ranked`
GROUP BY window_start, window_end;

INSERT INTO `top_pages_5m_sink`
SELECT
    CONCAT('', '|', m.`__start`),
    m.`__start`,
    m.`__end`,
    m.`__a0`,
    ARRAY_SLICE(ARRAY[ROW(t.`__v1`, t.`__c1`), ROW(t.`__v2`, t.`__c2`), ROW(t.`__v3`, t.`__c3`), ROW(t.`__v4`, t.`__c4`), ROW(t.`__v5`, t.`__c5`), ROW(t.`__v6`, t.`__c6`), ROW(t.`__v7`, t.`__c7`), ROW(t.`__v8`, t.`__c8`), ROW(t.`__v9`, t.`__c9`), ROW(t.`__v10`, t.`__c10`)], 1, CAST(t.`__n` AS INT))
FROM `top_pages_5m_windows` AS m
JOIN `top_pages_5m_top` AS t ON m.window_start = t.window_start AND m.window_end = t.window_end;
