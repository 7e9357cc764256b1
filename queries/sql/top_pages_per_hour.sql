-- question: Which pages were viewed most in each hour?
-- The hour is the lake's hour partition, which sinks write by event time (dt=YYYY-MM-DD/hour=HH/),
-- so the event_time column is not read at all.
-- reads: clickstream_events
-- fill: tidelake demo (or replay a log and run the clickstream_events sink)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: hour INTEGER = NULL | only this hour of the day, 0-23 (prunes hour partitions)
-- param: top INTEGER = 5 | pages per hour
-- param: include_bots BOOLEAN = false | count requests from crawlers too
WITH views AS (
    SELECT dt, hour, page, count(*) AS views
    FROM clickstream_events
    WHERE ($day IS NULL OR dt = $day)
      AND ($hour IS NULL OR hour = $hour)
      AND ($include_bots OR NOT is_bot)
    GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY dt, hour ORDER BY views DESC, page) AS rank
    FROM views
)
SELECT CAST(dt + to_hours(hour) AS TIMESTAMPTZ) AS hour_start, rank, page, views
FROM ranked
WHERE rank <= $top
ORDER BY dt, hour, rank
