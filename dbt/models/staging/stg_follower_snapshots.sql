with source as (
    select * from {{ source('raw', 'follower_snapshots') }}
)

select
    snapshot_id,
    account_id,
    environment,
    collected_at,
    followers_count,
    following_count
from source
where followers_count is not null
