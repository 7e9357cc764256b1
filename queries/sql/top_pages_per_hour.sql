-- question: Which pages were viewed most in each hour?
-- reads: clickstream_events
-- fill: tidelake demo (or replay a log and run the clickstream_events sink)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: hour INTEGER = NULL | only this hour of the day, 0-23 (prunes hour partitions)
-- param: top INTEGER = 5 | pages per hour
-- param: include_bots BOOLEAN = false | count requests from crawlers too
WITH views AS (
    -- whole hours since the epoch: integer maths instead of a time-zone-aware date_trunc per row
    SELECT epoch_us(event_time) // 3600000000 AS hour_no, page, count(*) AS views
    FROM clickstream_events
    WHERE ($day IS NULL OR dt = $day)
      AND ($hour IS NULL OR hour = $hour)
      AND ($include_bots OR NOT is_bot)
    GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY hour_no ORDER BY views DESC, page) AS rank
    FROM views
)
SELECT to_timestamp(hour_no * 3600) AS hour_start, rank, page, views
FROM ranked
WHERE rank <= $top
ORDER BY hour_no, rank
