-- Per account and topic, measured posts of the 7 days up to the account's newest post
-- (anchored on the data, not the wall clock, so a replayed or simulated history reads the same).
with anchored as (
    select
        *,
        max(posted_at) over (partition by account_id) as newest_posted_at
    from marts.fct_post_outcomes
    where final_horizon is not null
)

select
    account,
    topic,
    count(*) as n_posts,
    sum(impressions) as impressions,
    sum(likes + reposts + replies + quotes + bookmarks + profile_clicks) as engagements,
    round(
        sum(likes + reposts + replies + quotes + bookmarks + profile_clicks)::double
        / nullif(sum(impressions), 0),
        6
    ) as engagement_rate,
    round(avg(reward), 6) as mean_reward,
    sum(follows) as follows
from anchored
where posted_at > newest_posted_at - interval 7 day
group by account, topic
order by account, mean_reward desc, topic
