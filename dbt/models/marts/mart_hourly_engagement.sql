-- Per account, local weekday and hour: how posts at that time did (measured posts only),
-- re-aggregated from the daily rollup.
with daily as (
    select * from {{ ref('mart_post_outcomes_daily') }}
    where n_measured > 0
),

final as (
    select
        account_id,
        any_value(account) as account,
        weekday_local,
        hour_local,
        sum(n_measured)::bigint as n_posts,
        sum(impressions) as impressions,
        sum(engagements) as engagements,
        case when sum(impressions) > 0
            then sum(engagements)::double / sum(impressions)
            else 0.0 end as engagement_rate,
        sum(sum_reward) / sum(n_measured) as mean_reward,
        sum(follows) as follows
    from daily
    group by account_id, weekday_local, hour_local
)

select * from final
