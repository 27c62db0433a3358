-- Per account and local day: is the bot learning? The day's mean reward, its running mean,
-- how often posts beat the account's median, and how well the scorer's predictions tracked
-- the outcomes (correlation of predicted_score with reward). Read from the daily sums of
-- mart_post_outcomes_daily, so its cost does not grow with every post ever made.
with daily as (
    select
        account,
        posted_date_local as day,
        sum(n_measured)::bigint as n_posts,
        sum(sum_reward) / sum(n_measured) as mean_reward,
        sum(sum_beats_median)::double / sum(n_measured) as beats_median_rate,
        sum(sum_score) / nullif(sum(n_scored), 0) as mean_predicted_score,
        sum(n_scored) as n,
        sum(sum_score) as sx,
        sum(sum_reward_scored) as sy,
        sum(sum_score_sq) as sxx,
        sum(sum_reward_sq_scored) as syy,
        sum(sum_score_reward) as sxy
    from marts.mart_post_outcomes_daily
    where n_measured > 0
    group by account, posted_date_local
)

select
    account,
    day,
    n_posts,
    round(mean_reward, 6) as mean_reward,
    round(
        sum(mean_reward * n_posts) over (partition by account order by day)
        / sum(n_posts) over (partition by account order by day),
        6
    ) as cumulative_mean_reward,
    round(beats_median_rate, 4) as beats_median_rate,
    round(mean_predicted_score, 6) as mean_predicted_score,
    round(
        case when n > 1 and (n * sxx - sx * sx) > 0 and (n * syy - sy * sy) > 0
            then (n * sxy - sx * sy) / sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))
        end,
        4
    ) as score_reward_corr
from daily
order by account, day
