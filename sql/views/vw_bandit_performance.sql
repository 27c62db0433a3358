-- Per account and arm: how often the bandit played it, what it paid, and its gap to the best
-- arm so far (the per-play regret the bandit pays when it picks this arm).
with arms as (
    select * from marts.mart_arm_performance
),

totals as (
    select account_id, sum(n_posts) as account_posts, max(mean_reward) as best_mean_reward
    from arms
    group by account_id
)

select
    arms.account,
    arms.arm,
    arms.format,
    arms.topic,
    arms.n_posts,
    round(arms.n_posts::double / totals.account_posts, 4) as play_share,
    round(arms.mean_reward, 6) as mean_reward,
    round(totals.best_mean_reward - arms.mean_reward, 6) as gap_to_best,
    arms.successes,
    arms.trials,
    round(arms.beats_median_rate, 4) as beats_median_rate
from arms
join totals on arms.account_id = totals.account_id
order by arms.account, arms.mean_reward desc, arms.arm
