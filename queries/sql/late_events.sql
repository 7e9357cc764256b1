-- question: How many events reached each stream app after their window had closed, per hour of event time?
-- reads: late_events
-- fill: run any stream app (its late events go to analytics.late-events) and the late-events sink (tidelake demo does both)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: app VARCHAR = NULL | only this stream app
SELECT date_trunc('hour', event_time) AS hour_start, app, count(*) AS late_events
FROM late_events
WHERE ($day IS NULL OR dt = $day) AND ($app IS NULL OR app = $app)
GROUP BY ALL
ORDER BY hour_start, app
