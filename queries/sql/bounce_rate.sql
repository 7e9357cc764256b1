-- question: What share of visits are bounces (a session with a single request), per day?
-- reads: clickstream_events
-- fill: tidelake demo (or replay a log and run the clickstream_events sink)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: session_gap_minutes INTEGER = 30 | inactivity that ends a session (like web analytics tools)
-- param: include_bots BOOLEAN = false | count sessions of crawlers too
WITH hits AS (
    SELECT visitor_id, event_time,
           lag(event_time) OVER (PARTITION BY visitor_id ORDER BY event_time) AS previous
    FROM clickstream_events
    WHERE ($day IS NULL OR dt = $day) AND ($include_bots OR NOT is_bot)
), numbered AS (
    SELECT visitor_id, event_time,
           sum(CASE WHEN previous IS NULL OR event_time - previous > to_minutes($session_gap_minutes)
                    THEN 1 ELSE 0 END)
               OVER (PARTITION BY visitor_id ORDER BY event_time ROWS UNBOUNDED PRECEDING) AS session_no
    FROM hits
), sessions AS (
    SELECT visitor_id, session_no, min(event_time) AS started, count(*) AS requests
    FROM numbered
    GROUP BY ALL
)
SELECT CAST(started AS DATE) AS day,
       count(*) AS sessions,
       count(*) FILTER (WHERE requests = 1) AS bounces,
       round(100.0 * count(*) FILTER (WHERE requests = 1) / count(*), 2) AS bounce_rate_pct
FROM sessions
GROUP BY ALL
ORDER BY day
