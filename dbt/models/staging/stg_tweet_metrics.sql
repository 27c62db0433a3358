-- Every metric snapshot, renamed, with its horizon in hours. A re-collected snapshot may sit
-- here twice (two loads of the same post and horizon); fct_post_outcomes keeps the newest.
-- No deduplication here on purpose: a window over every snapshot cannot be filtered before it
-- runs, and the incremental marts must read only the snapshots of the posts they recompute.
with source as (
    select * from {{ source('raw', 'tweet_metrics') }}
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
        collected_at,
        _loaded_at
    from source
)

select * from final
