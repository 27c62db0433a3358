-- One row per published post with its final outcome: the snapshot at the longest horizon
-- collected so far (72h once it is in), the weighted reward (X's ranking weights, from the
-- reward_weights seed generated from learning/rewards.py) and the scorer's label beats_median.
with posts as (
    select * from {{ ref('fct_posts') }}
),

snapshots as (
    select * from {{ ref('stg_tweet_metrics') }}
),

final_snapshot as (
    select *
    from snapshots
    qualify row_number() over (partition by post_id order by horizon_hours desc) = 1
),

weights as (
    select {{ reward_weight_columns() }}
    from {{ ref('reward_weights') }}
),

joined as (
    select
        posts.*,
        final_snapshot.horizon as final_horizon,
        final_snapshot.collected_at as metrics_collected_at,
        {% for m in metric_names() %}coalesce(final_snapshot.{{ m }}, 0) as {{ m }},
        {% endfor %}
        {{ weighted_engagements('final_snapshot') }} as weighted_engagements
    from posts
    left join final_snapshot on posts.post_id = final_snapshot.post_id
    cross join weights
),

rewarded as (
    select
        *,
        case
            when impressions > 0 then coalesce(weighted_engagements, 0) / impressions
            else 0.0
        end as reward
    from joined
),

final as (
    select
        post_id,
        account_id,
        account,
        environment,
        posted_at,
        hour_local,
        weekday_local,
        posted_date_local,
        format,
        topic,
        arm,
        content_source,
        policy,
        predicted_score,
        text,
        text_length,
        n_hashtags,
        has_link,
        has_question,
        has_number,
        thread_length,
        hook_type,
        final_horizon,
        cast(final_horizon = '72h' as integer) as is_final,
        metrics_collected_at,
        {% for m in metric_names() %}{{ m }},
        {% endfor %}coalesce(weighted_engagements, 0.0) as weighted_engagements,
        reward,
        median(reward) filter (where final_horizon is not null) over (
            partition by account_id order by posted_at, post_id
            rows between 50 preceding and 1 preceding
        ) as account_rolling_median_reward,
        cast(
            reward > coalesce(
                median(reward) filter (where final_horizon is not null) over (
                    partition by account_id order by posted_at, post_id
                    rows between 50 preceding and 1 preceding
                ),
                0.0
            ) as integer
        ) as beats_median
    from rewarded
)

select * from final
