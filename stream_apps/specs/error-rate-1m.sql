-- HTTP error rate per minute: requests, 4xx+5xx errors and their share, 5xx errors and their share.
-- The KDA SQL form of error-rate-1m.toml (a NULL status counts in neither sum nor share, as there).
-- tidelake: source = clickstream.events
-- tidelake: sink_topic = analytics.error-rate-1m
-- tidelake: allowed_lateness = 5s
-- tidelake: idle_timeout = 10s
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "window_start"        TIMESTAMP,
    "window_end"          TIMESTAMP,
    "count"               BIGINT,
    "sum_is_error"        BIGINT,
    "avg_is_error"        DOUBLE,
    "sum_is_server_error" BIGINT,
    "avg_is_server_error" DOUBLE);

CREATE OR REPLACE PUMP "ERROR_RATE_1M_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM STEP(ROWTIME BY INTERVAL '60' SECOND),
           STEP(ROWTIME BY INTERVAL '60' SECOND) + INTERVAL '60' SECOND,
           COUNT(*),
           SUM(CASE WHEN "status" IS NULL THEN NULL WHEN "status" >= 400 THEN 1 ELSE 0 END),
           AVG(CASE WHEN "status" IS NULL THEN NULL WHEN "status" >= 400 THEN 1 ELSE 0 END),
           SUM(CASE WHEN "status" IS NULL THEN NULL WHEN "status" >= 500 THEN 1 ELSE 0 END),
           AVG(CASE WHEN "status" IS NULL THEN NULL WHEN "status" >= 500 THEN 1 ELSE 0 END)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY STEP(ROWTIME BY INTERVAL '60' SECOND);
