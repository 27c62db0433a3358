-- Per account and content source (offline generator, OpenAI, ...): output and pay-off of the
-- measured posts each source wrote (from the daily sums of mart_post_outcomes_daily).
select
    account,
    content_source,
    sum(n_measured)::bigint as n_posts,
    sum(impressions) as impressions,
    round(sum(engagements)::double / nullif(sum(impressions), 0), 6) as engagement_rate,
    round(sum(sum_reward) / sum(n_measured), 6) as mean_reward,
    round(sum(sum_beats_median)::double / sum(n_measured), 4) as beats_median_rate,
    sum(follows) as follows
from marts.mart_post_outcomes_daily
where n_measured > 0
group by account, content_source
order by account, mean_reward desc, content_source
