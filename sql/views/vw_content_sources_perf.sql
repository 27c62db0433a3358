-- Per account and content source (offline generator, OpenAI, ...): output and pay-off of the
-- measured posts each source wrote.
select
    account,
    content_source,
    count(*) as n_posts,
    sum(impressions) as impressions,
    round(
        sum(likes + reposts + replies + quotes + bookmarks + profile_clicks)::double
        / nullif(sum(impressions), 0),
        6
    ) as engagement_rate,
    round(avg(reward), 6) as mean_reward,
    round(avg(beats_median), 4) as beats_median_rate,
    sum(follows) as follows
from marts.fct_post_outcomes
where final_horizon is not null
group by account, content_source
order by account, mean_reward desc, content_source
