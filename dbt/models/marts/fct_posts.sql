-- One row per published post; a thread counts once, by its root (thread_position 0), and
-- carries its length. Timing is in the account's own time zone; text features are read from
-- the text the way the audience (and the sandbox) reads them.
--
-- Incremental: a run reads only the posts loaded into raw after the newest `_loaded_at` this
-- table holds, and replaces them by post_id. `posted` is terminal in the durable store (no
-- post ever leaves it), so a published row never needs deleting. What a new load cannot
-- reach: a changed account time zone or a candidate loaded after its post. `--full-refresh`
-- (ExtractConfig full_refresh in Dagster) rebuilds everything.
{{ config(
    materialized='incremental',
    unique_key='post_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
) }}

with posts as (
    select * from {{ ref('stg_posts') }}
    where status = 'posted' and thread_position = 0 and posted_at is not null
    {% if is_incremental() %}and _loaded_at > {{ loaded_watermark() }}{% endif %}
),

accounts as (
    select * from {{ ref('stg_accounts') }}
),

chosen_candidates as (
    select
        post_id,
        arg_max(content_source, created_at) as content_source
    from {{ ref('stg_candidates') }}
    where post_id in (select post_id from posts)
    group by post_id
),

published as (
    select
        posts.*,
        coalesce(accounts.timezone, 'UTC') as timezone,
        timezone(coalesce(accounts.timezone, 'UTC'), posts.posted_at) as posted_at_local,
        coalesce(posts.content_source, chosen_candidates.content_source, 'unknown')
            as resolved_content_source
    from posts
    left join accounts on posts.account_id = accounts.account_id
    left join chosen_candidates on posts.post_id = chosen_candidates.post_id
),

final as (
    select
        post_id,
        account_id,
        account,
        environment,
        x_post_id,
        posted_at,
        timezone,
        cast(hour(posted_at_local) as integer) as hour_local,
        cast(isodow(posted_at_local) - 1 as integer) as weekday_local,
        cast(posted_at_local as date) as posted_date_local,
        format,
        topic,
        arm,
        resolved_content_source as content_source,
        coalesce(policy, 'unknown') as policy,
        predicted_score,
        propensity,
        text,
        cast(length(text) as integer) as text_length,
        cast(len(regexp_extract_all(text, '#\w+')) as integer) as n_hashtags,
        cast(regexp_matches(text, 'https?://') as integer) as has_link,
        cast(contains(text, '?') as integer) as has_question,
        cast(regexp_matches(text, '[0-9]') as integer) as has_number,
        thread_size as thread_length,
        case
            when regexp_matches(lower(text), '^\s*how to\b') then 'how_to'
            when regexp_matches(lower(text), '^\s*(hot take:|unpopular opinion:)') then 'hot_take'
            when regexp_matches(split_part(text, chr(10), 1), '\?\s*$') then 'question'
            when regexp_matches(text, '^\s*[0-9]') then 'number'
            when regexp_matches(lower(text), '^\s*(stop|never|don''t|always)\b') then 'imperative'
            else 'statement'
        end as hook_type,
        _loaded_at
    from published
)

select * from final
