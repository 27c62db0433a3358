-- The latest snapshot per post and horizon (a re-collected snapshot may sit in two day
-- partitions of the raw table; the newest wins, as in the store).
with source as (
    select * from {{ source('raw', 'tweet_metrics') }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by post_id, horizon order by collected_at desc
        ) as recency
    from source
),

final as (
    select
        post_id,
        account_id,
        environment,
        horizon,
        case horizon when '1h' then 1 when '6h' then 6 when '24h' then 24 when '72h' then 72 end
            as horizon_hours,
        {% for m in metric_names() %}coalesce({{ m }}, 0) as {{ m }},
        {% endfor %}source,
        collected_at
    from ranked
    where recency = 1
)

select * from final
