with source as (
    select * from {{ source('raw', 'candidates') }}
)

select
    candidate_id,
    account_id,
    environment,
    batch_id,
    arm,
    coalesce(format, split_part(arm, ':', 1)) as format,
    coalesce(topic, split_part(arm, ':', 2)) as topic,
    coalesce(content_source, 'unknown') as content_source,
    predicted_score,
    coalesce(guard_passed, false) as guard_passed,
    coalesce(chosen, false) as chosen,
    post_id,
    created_at
from source
