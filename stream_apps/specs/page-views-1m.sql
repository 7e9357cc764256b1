-- Page views per page per minute (tumbling window): the KDA SQL form of page-views-1m.toml.
-- `tidelake stream run --sql page-views-1m` gives exactly the TOML app's rows.
-- tidelake: source = clickstream.events
-- tidelake: sink_topic = analytics.page-views-1m
-- tidelake: allowed_lateness = 5s
-- tidelake: idle_timeout = 10s
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "page"         VARCHAR(256),
    "window_start" TIMESTAMP,
    "window_end"   TIMESTAMP,
    "count"        BIGINT);

CREATE OR REPLACE PUMP "PAGE_VIEWS_1M_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "page",
           STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
           STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND) + INTERVAL '60' SECOND,
           COUNT(*)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY "page", STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);
