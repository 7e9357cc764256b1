-- question: How many requests failed (HTTP 4xx and 5xx) in each minute?
-- reads: clickstream_events
-- fill: tidelake demo (or replay a log and run the clickstream_events sink)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: hour INTEGER = NULL | only this hour of the day, 0-23 (prunes hour partitions)
-- param: min_status INTEGER = 400 | the lowest status that counts as an error (500 = server errors only)
SELECT date_trunc('minute', event_time) AS minute,
       count(*) AS requests,
       count(*) FILTER (WHERE status >= $min_status) AS errors,
       count(*) FILTER (WHERE status >= 500) AS server_errors,
       round(100.0 * count(*) FILTER (WHERE status >= $min_status) / count(*), 2) AS error_rate_pct
FROM clickstream_events
WHERE ($day IS NULL OR dt = $day) AND ($hour IS NULL OR hour = $hour)
GROUP BY ALL
HAVING count(*) FILTER (WHERE status >= $min_status) > 0
ORDER BY minute
