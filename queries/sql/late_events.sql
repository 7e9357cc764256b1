-- question: How many events arrived after their window had closed, per hour of event time?
-- reads: late_events
-- fill: run any stream app (its late events go to analytics.late-events) and a sink into `late_events` (tidelake demo does both)
-- param: day DATE = NULL | only this day (prunes dt partitions)
SELECT date_trunc('hour', event_time) AS hour_start, count(*) AS late_events
FROM late_events
WHERE $day IS NULL OR dt = $day
GROUP BY ALL
ORDER BY hour_start
