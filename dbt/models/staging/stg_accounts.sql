with source as (
    select * from {{ source('raw', 'accounts') }}
)

select
    account_id,
    account,
    environment,
    x_user_id,
    coalesce(nullif(timezone, ''), 'UTC') as timezone,
    coalesce(active, true) as active,
    created_at
from source
