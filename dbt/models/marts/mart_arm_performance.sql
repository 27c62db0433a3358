-- Per account and arm (format x topic): how often it was played and how it paid, over
-- measured posts. successes/trials are the binomial counts the Thompson-sampling posteriors
-- use (weighted engagements capped by impressions, out of impressions).
--
-- Re-aggregated from the daily rollup: every figure here is a sum or follows from sums (the
-- sample standard deviation from the sums of rewards and of their squares). A median does not
-- follow from sums, so there is none: fct_post_outcomes holds every post's reward for that.
with daily as (
    select * from {{ ref('mart_post_outcomes_daily') }}
    where n_measured > 0
),

summed as (
    select
        account_id,
        any_value(account) as account,
        arm,
        any_value(format) as format,
        any_value(topic) as topic,
        sum(n_measured)::bigint as n_posts,
        sum(impressions) as impressions,
        sum(engagements) as engagements,
        sum(follows) as follows,
        sum(sum_reward) as sum_reward,
        sum(sum_reward_sq) as sum_reward_sq,
        sum(sum_beats_median) as sum_beats_median,
        sum(successes) as successes,
        min(first_posted_at) as first_posted_at,
        max(last_posted_at) as last_posted_at
    from daily
    group by account_id, arm
),

final as (
    select
        account_id,
        account,
        arm,
        format,
        topic,
        n_posts,
        impressions,
        engagements,
        follows,
        sum_reward / n_posts as mean_reward,
        case when n_posts > 1 then
            sqrt(greatest(sum_reward_sq - sum_reward * sum_reward / n_posts, 0.0) / (n_posts - 1))
        end as stddev_reward,
        sum_beats_median::double / n_posts as beats_median_rate,
        successes,
        impressions as trials,
        first_posted_at,
        last_posted_at
    from summed
)

select * from final
