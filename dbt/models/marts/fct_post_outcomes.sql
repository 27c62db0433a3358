-- One row per published post with its final outcome: the newest snapshot at the longest
-- horizon collected so far (72h once it is in), the weighted reward (X's ranking weights, from
-- the reward_weights seed generated from learning/rewards.py) and the scorer's label
-- beats_median (the reward beats the median reward of the measured posts among the account's
-- previous 50).
--
-- Incremental, so that a new day costs a day whatever the history: a run finds the posts whose
-- row or snapshots were loaded after the newest `_loaded_at` this table holds, and recomputes,
-- per account, every post from the earliest of them on (a changed reward moves the median of
-- the 50 posts after it), with the 50 posts before that point read back from this table as the
-- median's context. A full refresh computes the same rows from scratch; tests/warehouse checks
-- that both agree.
{{ config(
    materialized='incremental',
    unique_key='post_id',
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
) }}

{% set median_window = 50 %}

{% if is_incremental() %}
    {#- What to recompute, decided before the query (see macros/incremental.sql). -#}
    {% set watermark = loaded_watermark() %}
    {% set changed_snapshots %}
        select post_id from {{ ref('stg_tweet_metrics') }} where _loaded_at > {{ watermark }}
    {% endset %}
    {#- The newest load among the changes: every row this run writes carries it, so the daily
        rollup downstream sees every row whose label moved, not only the ones whose data did. -#}
    {% set newest_load = timestamp_literal(
        "select max(loaded)::varchar from (
            select max(_loaded_at) as loaded from " ~ ref('fct_posts') ~
            " where _loaded_at > " ~ watermark ~ "
            union all
            select max(_loaded_at) from " ~ ref('stg_tweet_metrics') ~
            " where _loaded_at > " ~ watermark ~ ")", "null") %}
    {#- From the earliest changed post on, every post of every account is recomputed (one bound
        for all accounts keeps the bound a literal; recomputing an unchanged row is harmless). -#}
    {% set since = timestamp_literal(
        "select min(posted)::varchar from (
            select min(posted_at) as posted from " ~ ref('fct_posts') ~
            " where _loaded_at > " ~ watermark ~ "
            union all
            select min(posted_at) from " ~ ref('fct_posts') ~
            " where post_id in (" ~ changed_snapshots ~ "))", "'infinity'::timestamptz") %}
    {#- The median's context is the previous posts of each account; bound how far back to read
        when every account posted {{ median_window }} times within the bound. -#}
    {#- (a namespace: a plain `set` inside a Jinja loop does not outlive the loop) -#}
    {% set bound = namespace(context_from="'-infinity'::timestamptz") %}
    {% if execute and since != "'infinity'::timestamptz" %}
        {% for days in [7, 90] %}
            {% if bound.context_from == "'-infinity'::timestamptz" %}
                {% set short = run_query(
                    "with recent as (select distinct account_id from " ~ ref('fct_posts') ~
                    " where posted_at >= " ~ since ~ "),
                    counts as (select account_id, count(*) as n from " ~ this ~
                    " where posted_at >= " ~ since ~ " - interval " ~ days ~ " day
                      and posted_at < " ~ since ~ " group by account_id)
                    select count(*) from recent left join counts using (account_id)
                    where coalesce(n, 0) < " ~ median_window) %}
                {% if short.columns[0].values()[0] == 0 %}
                    {% set bound.context_from = since ~ " - interval " ~ days ~ " day" %}
                {% endif %}
            {% endif %}
        {% endfor %}
    {% endif %}
    {% set context_from = bound.context_from %}
{% endif %}

with
{% if is_incremental() %}
posts as (
    select * from {{ ref('fct_posts') }}
    where posted_at >= {{ since }}
),

-- The {{ median_window }} posts before the recompute point, per account, as already computed.
context_lists as (
    select
        account_id,
        arg_max(
            {post_id: post_id, posted_at: posted_at, reward: reward,
             final_horizon: final_horizon},
            {posted_at: posted_at, post_id: post_id},
            {{ median_window }}
        ) as previous
    from {{ this }}
    where posted_at < {{ since }} and posted_at >= {{ context_from }}
        and account_id in (select account_id from posts)
    group by account_id
),

context as (
    select account_id, unnest(previous, recursive := true)
    from context_lists
),
{% else %}
posts as (
    select * from {{ ref('fct_posts') }}
),
{% endif %}

snapshots as (
    select * from {{ ref('stg_tweet_metrics') }}
    {% if is_incremental() %}
    where post_id in (select post_id from posts)
    {% endif %}
),

final_snapshot as (
    select
        *,
        max(_loaded_at) over (partition by post_id) as snapshots_loaded_at
    from snapshots
    qualify row_number() over (
        partition by post_id order by horizon_hours desc, collected_at desc
    ) = 1
),

weights as (
    select {{ reward_weight_columns() }}
    from {{ ref('reward_weights') }}
),

joined as (
    select
        posts.*,
        final_snapshot.horizon as final_horizon,
        final_snapshot.collected_at as metrics_collected_at,
        greatest(posts._loaded_at, final_snapshot.snapshots_loaded_at) as row_loaded_at,
        {% for m in metric_names() %}coalesce(final_snapshot.{{ m }}, 0) as {{ m }},
        {% endfor %}
        {{ weighted_engagements('final_snapshot') }} as weighted_engagements
    from posts
    left join final_snapshot on posts.post_id = final_snapshot.post_id
    cross join weights
),

rewarded as (
    select
        *,
        case
            when impressions > 0 then coalesce(weighted_engagements, 0) / impressions
            else 0.0
        end as reward
    from joined
),

with_context as (
    select *, false as is_context from rewarded
    {% if is_incremental() %}
    union all by name
    select post_id, account_id, posted_at, reward, final_horizon, true as is_context
    from context
    {% endif %}
),

rolling as (
    select
        *,
        median(reward) filter (where final_horizon is not null) over (
            partition by account_id order by posted_at, post_id
            rows between {{ median_window }} preceding and 1 preceding
        ) as account_rolling_median_reward
    from with_context
    qualify not is_context
),

final as (
    select
        post_id,
        account_id,
        account,
        environment,
        posted_at,
        hour_local,
        weekday_local,
        posted_date_local,
        format,
        topic,
        arm,
        content_source,
        policy,
        predicted_score,
        propensity,
        text,
        text_length,
        n_hashtags,
        has_link,
        has_question,
        has_number,
        thread_length,
        hook_type,
        final_horizon,
        cast(final_horizon = '72h' as integer) as is_final,
        metrics_collected_at,
        {% for m in metric_names() %}{{ m }},
        {% endfor %}coalesce(weighted_engagements, 0.0) as weighted_engagements,
        reward,
        account_rolling_median_reward,
        cast(reward > coalesce(account_rolling_median_reward, 0.0) as integer)
            as beats_median,
        {% if is_incremental() %}cast({{ newest_load }} as timestamptz){% else %}row_loaded_at{% endif %}
            as _loaded_at
    from rolling
)

select * from final
