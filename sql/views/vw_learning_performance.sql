-- Per account and local day: is the bot learning? The day's mean reward, its running mean,
-- how often posts beat the account's median, and how well the scorer's predictions tracked
-- the outcomes (correlation of predicted_score with reward).
with daily as (
    select
        account,
        posted_date_local as day,
        count(*) as n_posts,
        avg(reward) as mean_reward,
        avg(beats_median) as beats_median_rate,
        avg(predicted_score) as mean_predicted_score,
        corr(predicted_score, reward) as score_reward_corr
    from marts.fct_post_outcomes
    where final_horizon is not null
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
    round(score_reward_corr, 4) as score_reward_corr
from daily
order by account, day
