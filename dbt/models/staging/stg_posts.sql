with source as (
    select * from {{ source('raw', 'posts') }}
),

renamed as (
    select
        post_id,
        account,
        environment,
        lower(status) as status,
        x_post_id,
        thread_root_id,
        coalesce(thread_position, 0) as thread_position,
        text,
        coalesce(arm, format || ':' || topic) as arm,
        coalesce(format, split_part(arm, ':', 1)) as format,
        coalesce(topic, split_part(arm, ':', 2)) as topic,
        coalesce(content_source, 'unknown') as content_source,
        coalesce(policy, 'unknown') as policy,
        predicted_score,
        created_at,
        posted_at
    from source
)

select * from renamed
