-- Per account and arm (format x topic): how often it was played and how it paid, over
-- measured posts. successes/trials are the binomial counts the Thompson-sampling posteriors
-- use (weighted engagements capped by impressions, out of impressions).
with outcomes as (
    select * from {{ ref('fct_post_outcomes') }}
    where final_horizon is not null
),

final as (
    select
        account_id,
        account,
        arm,
        format,
        topic,
        count(*) as n_posts,
        sum(impressions) as impressions,
        sum({% for m in ['likes', 'reposts', 'replies', 'quotes', 'bookmarks', 'profile_clicks'] %}{{ m }}{{ " + " if not loop.last }}{% endfor %})
            as engagements,
        sum(follows) as follows,
        avg(reward) as mean_reward,
        median(reward) as median_reward,
        stddev_samp(reward) as stddev_reward,
        avg(beats_median) as beats_median_rate,
        sum(least(greatest(weighted_engagements, 0), impressions)) as successes,
        sum(impressions) as trials,
        min(posted_at) as first_posted_at,
        max(posted_at) as last_posted_at
    from outcomes
    group by account_id, account, arm, format, topic
)

select * from final
