-- Anomaly score of the per-minute page-view count: the KDA SQL form of page-view-anomalies.toml,
-- as AWS's RANDOM_CUT_FOREST example has it (a pump counts per minute into an in-application
-- stream, a second pump scores that stream). The TOML's forest is 40 trees of 256 shingles of the
-- last 4 counts, so the function's parameters are (40, 256, 100000, 4): only "count" is numeric in
-- the cursor, so the point is the count alone. `tidelake stream run --sql page-view-anomalies`
-- gives exactly the TOML app's rows, scores included (rrcf, fixed seed: not numerically AWS's).
-- tidelake: source = clickstream.events
-- tidelake: sink_topic = analytics.page-view-anomalies
-- tidelake: allowed_lateness = 5s
-- tidelake: idle_timeout = 10s
CREATE OR REPLACE STREAM "PV_PER_MINUTE" (
    "window_start" TIMESTAMP,
    "window_end"   TIMESTAMP,
    "count"        BIGINT);

CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (
    "window_start"  TIMESTAMP,
    "window_end"    TIMESTAMP,
    "count"         BIGINT,
    "anomaly_score" DOUBLE);

CREATE OR REPLACE PUMP "PV_PER_MINUTE_PUMP" AS INSERT INTO "PV_PER_MINUTE"
    SELECT STREAM STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
           STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND) + INTERVAL '60' SECOND,
           COUNT(*)
    FROM "SOURCE_SQL_STREAM_001"
    GROUP BY STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);

CREATE OR REPLACE PUMP "PAGE_VIEW_ANOMALIES_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
    SELECT STREAM "window_start", "window_end", "count", ANOMALY_SCORE
    FROM TABLE(RANDOM_CUT_FOREST(
        CURSOR(SELECT STREAM * FROM "PV_PER_MINUTE"), 40, 256, 100000, 4));
