-- Post outcomes summed per account, UTC posting day (and local date), arm, content source and
-- local posting hour: the grain the performance marts and views aggregate from. Every column is a
-- count or a sum (the means, standard deviations and correlations follow from them), so they
-- re-aggregate a few hundred rows a day instead of every post ever made.
--
-- Incremental: the (account, day) pairs holding a post_outcomes row written since the newest
-- `_loaded_at` here are recomputed whole (delete+insert on account_id, posted_day).
{{ config(
    materialized='incremental',
    unique_key=['account_id', 'posted_day'],
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
) }}

{% if is_incremental() %}
    {% set watermark = loaded_watermark() %}
    {% set first_day %}
        select min(posted_at)::varchar from {{ ref('fct_post_outcomes') }}
        where _loaded_at > {{ watermark }}
    {% endset %}
    {% set since = timestamp_literal(first_day, "'infinity'::timestamptz") %}
{% endif %}

with
{% if is_incremental() %}
changed_days as (
    select distinct account_id, cast(timezone('UTC', posted_at) as date) as posted_day
    from {{ ref('fct_post_outcomes') }}
    where _loaded_at > {{ watermark }}
),
{% endif %}

outcomes as (
    select
        o.*,
        cast(timezone('UTC', o.posted_at) as date) as posted_day,
        o.final_horizon is not null as measured
    from {{ ref('fct_post_outcomes') }} as o
    {% if is_incremental() %}
    -- whole UTC days from the first changed one (the delete replaces whole days)
    {% if since == "'infinity'::timestamptz" %}
    where false
    {% else %}
    where o.posted_at >= timezone('UTC', date_trunc('day', timezone('UTC', {{ since }})))
        and exists (
            select 1 from changed_days as c
            where c.account_id = o.account_id
                and c.posted_day = cast(timezone('UTC', o.posted_at) as date)
        )
    {% endif %}
    {% endif %}
),

final as (
    select
        account_id,
        posted_day,
        posted_date_local,
        arm,
        content_source,
        weekday_local,
        hour_local,
        any_value(account) as account,
        any_value(format) as format,
        any_value(topic) as topic,
        count(*) as n_posts,
        sum(follows) as follows_all,
        count(*) filter (where measured) as n_measured,
        coalesce(sum(impressions) filter (where measured), 0) as impressions,
        coalesce(sum(likes + reposts + replies + quotes + bookmarks + profile_clicks)
            filter (where measured), 0) as engagements,
        coalesce(sum(follows) filter (where measured), 0) as follows,
        coalesce(sum(reward) filter (where measured), 0.0) as sum_reward,
        coalesce(sum(reward * reward) filter (where measured), 0.0) as sum_reward_sq,
        coalesce(sum(beats_median) filter (where measured), 0) as sum_beats_median,
        coalesce(sum(least(greatest(weighted_engagements, 0), impressions))
            filter (where measured), 0.0) as successes,
        -- the scorer's predictions against rewards, over measured posts that have a prediction
        count(*) filter (where measured and predicted_score is not null) as n_scored,
        coalesce(sum(predicted_score) filter (where measured), 0.0) as sum_score,
        coalesce(sum(predicted_score * predicted_score) filter (where measured), 0.0)
            as sum_score_sq,
        coalesce(sum(reward) filter (where measured and predicted_score is not null), 0.0)
            as sum_reward_scored,
        coalesce(sum(reward * reward) filter (where measured and predicted_score is not null), 0.0)
            as sum_reward_sq_scored,
        coalesce(sum(predicted_score * reward) filter (where measured), 0.0) as sum_score_reward,
        min(posted_at) filter (where measured) as first_posted_at,
        max(posted_at) filter (where measured) as last_posted_at,
        max(_loaded_at) as _loaded_at
    from outcomes
    group by
        account_id, posted_day, posted_date_local, arm, content_source, weekday_local, hour_local
)

select * from final
