-- question: How many sessions does a visitor have (visitors by number of sessions)?
-- reads: clickstream_events
-- fill: tidelake demo (or replay a log and run the clickstream_events sink)
-- param: day DATE = NULL | only this day (prunes dt partitions)
-- param: session_gap_minutes INTEGER = 30 | inactivity that ends a session
-- param: include_bots BOOLEAN = false | count crawlers too
WITH hits AS (
    SELECT visitor_id, event_time,
           lag(event_time) OVER (PARTITION BY visitor_id ORDER BY event_time) AS previous
    FROM clickstream_events
    WHERE ($day IS NULL OR dt = $day) AND ($include_bots OR NOT is_bot)
), per_visitor AS (
    SELECT visitor_id,
           count(*) FILTER (WHERE previous IS NULL OR event_time - previous > to_minutes($session_gap_minutes))
               AS sessions
    FROM hits
    GROUP BY visitor_id
)
SELECT sessions, count(*) AS visitors, round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct_of_visitors
FROM per_visitor
GROUP BY sessions
ORDER BY sessions
