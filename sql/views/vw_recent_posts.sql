-- The 100 most recent published posts with their latest outcome: what an operator checks first.
select
    post_id,
    account,
    posted_at,
    arm,
    format,
    topic,
    left(text, 80) as text_preview,
    final_horizon,
    impressions,
    likes,
    reposts,
    replies,
    quotes,
    follows,
    round(reward, 6) as reward,
    beats_median
from marts.fct_post_outcomes
order by posted_at desc, post_id desc
limit 100
