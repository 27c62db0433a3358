-- Per account and UTC day: followers at the day's last snapshot, the change since the
-- previous day with a snapshot, and the follows attributed to that day's posts.
with snapshots as (
    select * from {{ ref('stg_follower_snapshots') }}
),

accounts as (
    select * from {{ ref('stg_accounts') }}
),

daily as (
    select
        account_id,
        cast(timezone('UTC', collected_at) as date) as day,
        arg_max(followers_count, collected_at) as followers,
        count(*) as n_snapshots
    from snapshots
    group by account_id, cast(timezone('UTC', collected_at) as date)
),

post_follows as (
    select
        account_id,
        posted_day as day,
        sum(n_posts) as n_posts,
        sum(follows_all) as follows_from_posts
    from {{ ref('mart_post_outcomes_daily') }}
    group by account_id, posted_day
),

final as (
    select
        daily.account_id,
        accounts.account,
        daily.day,
        daily.followers,
        daily.followers - lag(daily.followers) over (
            partition by daily.account_id order by daily.day
        ) as followers_delta,
        daily.n_snapshots,
        coalesce(post_follows.n_posts, 0) as n_posts,
        coalesce(post_follows.follows_from_posts, 0) as follows_from_posts
    from daily
    left join accounts on daily.account_id = accounts.account_id
    left join post_follows
        on daily.account_id = post_follows.account_id and daily.day = post_follows.day
)

select * from final
