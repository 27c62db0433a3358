-- Per account, local weekday and hour: how posts at that time did (measured posts only).
with outcomes as (
    select * from {{ ref('fct_post_outcomes') }}
    where final_horizon is not null
),

final as (
    select
        account_id,
        account,
        weekday_local,
        hour_local,
        count(*) as n_posts,
        sum(impressions) as impressions,
        sum(likes + reposts + replies + quotes + bookmarks + profile_clicks) as engagements,
        case when sum(impressions) > 0
            then sum(likes + reposts + replies + quotes + bookmarks + profile_clicks)::double
                / sum(impressions)
            else 0.0 end as engagement_rate,
        avg(reward) as mean_reward,
        sum(follows) as follows
    from outcomes
    group by account_id, account, weekday_local, hour_local
)

select * from final
