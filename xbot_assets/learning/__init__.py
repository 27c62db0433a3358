"""Learning: features, rewards, scorer, bandits, policy and offline evaluation (no I/O).

Public API (pure: numpy/scikit-learn/statsmodels, no I/O except the scorer's save/load):

- ``rewards``: ``REWARD_WEIGHTS``, ``weighted_engagements``, ``engagement_reward``.
- ``features``: ``post_features(posts, timezone=..., last_topic_post_at=..., now=...)``,
  ``FEATURE_SCHEMA``, ``rolling_median_label``, ``hook_type_of``.
- ``scorer``: ``train_scorer(outcomes, timezone=...) -> ScorerReport`` (``.model``,
  ``.metrics``, ``.baseline_metrics``, ``.calibration``, ``.coefficients``, ``.beats_baseline``,
  ``.metadata()``), ``score_posts(model, rows)``, ``save_scorer``/``load_scorer`` (skops),
  ``PriorOnlyScorer``, ``to_markdown``.
- ``bandits``: ``ThompsonSampler(n_arms, *, prior, discount, seed)`` (``select``, ``update``,
  ``to_frame``, ``choice_probabilities``, ``set_prior``), ``binomial_evidence``,
  ``fit_beta_prior``, ``fit_overdispersion``, ``ChangeDetector``, ``DriftAwareThompson``.
- ``contextual_bandit``: ``LaplaceLogisticSampler`` + ``arms_feature_space`` (Bayesian logistic
  regression over format, topic and slot levels, diagonal Laplace approximation).
- ``scheduler``: ``ScheduleConfig`` (from bot_config), ``SlotScheduler`` (``plan_day``,
  ``next_slot``, ``update``, ``learn_from_posts``).
- ``policy``: ``ContentPolicy(arms, chooser, generate=, guard=, score=, scheduler=)``,
  ``.decide(now=...) -> PolicyDecision`` (``to_dict()`` for the store), ``ContextualChooser``.
- ``ope``: ``evaluate_policy``, ``compare_policies`` (IPS, SNIPS, DR with 95 % intervals),
  ``uniform_policy``, ``greedy_policy``, ``fixed_policy``, ``arm_mean_reward_model``.
- ``engine``: ``fit_arm_posteriors(outcomes, arms, objective="engagement"|"growth")``,
  ``learned_config(...)`` (plain dict for bot_config), ``post_evidence``.
- ``factored``: the policy's model. ``fit_factored(history, now=, formats=, topics=)`` (knobs:
  ``FitConfig``) -> ``FactoredPosterior``; its pieces: ``design`` (``PastPost``, ``Design``: the
  format, topic, time, recency and text covariates of a post or arm), ``posterior``
  (``FactoredPosterior``: Gaussian over those effects, JSON round trip, draws and valuation;
  ``FactoredThompson``: draw, score every arm at the slot, argmax; propensities; ``score_texts``
  ranks candidates), ``objective`` (``reward_of`` / ``winsorise``: the one signed, winsorised
  objective), ``horizon`` (``HorizonModel``: partial snapshot -> final counts).
- ``counts``: the default model behind ``fit_factored`` (``FitConfig.model="counts"``): arm
  effects learnt from every engagement count with impressions as exposure (one content effect
  shared by the positive metrics, a per-format metric mix, negative rates coupled to content),
  valued as the X-weighted reward (``FactoredPosterior.value``).
- ``synthetic``: ``synthetic_post_outcomes`` with known truth (tests, notebooks).
"""
