with source as (
    select * from {{ source('raw', 'posts') }}
),

renamed as (
    select
        post_id,
        account_id,
        account,
        environment,
        lower(status) as status,
        x_post_id,
        thread_root_id,
        coalesce(thread_position, 0) as thread_position,
        coalesce(thread_size, 1) as thread_size,
        text,
        coalesce(arm, format || ':' || topic) as arm,
        coalesce(format, split_part(arm, ':', 1)) as format,
        coalesce(topic, split_part(arm, ':', 2)) as topic,
        content_source,
        policy,
        predicted_score,
        propensity,
        scheduled_at,
        created_at,
        posted_at,
        updated_at,
        _loaded_at
    from source
)

select * from renamed
