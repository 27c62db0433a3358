-- Per account and local hour, measured posts of the 7 days up to the account's newest post.
with anchored as (
    select
        *,
        max(posted_at) over (partition by account_id) as newest_posted_at
    from marts.fct_post_outcomes
    where final_horizon is not null
)

select
    account,
    hour_local,
    count(*) as n_posts,
    sum(impressions) as impressions,
    round(
        sum(likes + reposts + replies + quotes + bookmarks + profile_clicks)::double
        / nullif(sum(impressions), 0),
        6
    ) as engagement_rate,
    round(avg(reward), 6) as mean_reward
from anchored
where posted_at > newest_posted_at - interval 7 day
group by account, hour_local
order by account, hour_local
