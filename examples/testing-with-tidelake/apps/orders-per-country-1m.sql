-- The same app as orders-per-country-1m.toml, as the Kinesis Data Analytics SQL a team would deploy.
-- tidelake: source = orders
-- tidelake: idle_timeout = 1s
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "country"      VARCHAR(2),
    "window_start" TIMESTAMP,
    "count"        BIGINT,
    "sum_amount"   DOUBLE);

CREATE OR REPLACE PUMP "ORDERS_1M_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "country",
           STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
           COUNT(*),
           SUM("amount")
    FROM "SOURCE_SQL_STREAM_001"
    WHERE "status" <> 'test'
    GROUP BY "country", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);
