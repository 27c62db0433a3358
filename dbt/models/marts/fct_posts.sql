-- One row per published post (thread roots only: a thread is judged as one post).
with posts as (
    select * from {{ ref('stg_posts') }}
),

final as (
    select
        post_id,
        account,
        environment,
        x_post_id,
        posted_at,
        arm,
        format,
        topic,
        content_source,
        policy,
        predicted_score,
        text,
        (select count(*) from posts as parts where parts.thread_root_id = posts.post_id) + 1
            as thread_length
    from posts
    where status = 'posted' and thread_root_id is null
)

select * from final
