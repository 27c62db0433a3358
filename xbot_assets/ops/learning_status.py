"""Where the learning engine leaves the figures operators watch, and the audit of a promotion.

The learning assets run in Dagster runs; the health server (another process) can only export
what they leave in the durable store. Two ``bot_config`` keys hold the latest figures:

- :data:`MODEL_KEY_PREFIX` + model name (``model.engagement_scorer``): which model is deployed and
  its held-out metrics (``auc``, ``log_loss``, ``brier``), written by :func:`record_model_promotion`
  together with a ``model.promoted`` audit row naming who promoted it;
- :data:`POLICY_ESTIMATES_KEY`: the latest regret estimate and policy values from offline policy
  evaluation, written by :func:`record_policy_estimates`.

``/metrics`` exports them as ``xbot_model_auc`` and ``xbot_regret_estimate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xbot_assets.ops.audit import EVENT_MODEL_PROMOTED, record_audit
from xbot_assets.store.durable import DurableStore
from xbot_assets.store.timebase import Clock, utc_now

MODEL_KEY_PREFIX = "model."
POLICY_ESTIMATES_KEY = "policy.estimates"
LEARNING_ACTOR = "learning_engine"


def _finite(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, value in metrics.items():
        if value is None or isinstance(value, bool):
            out[name] = None
        elif isinstance(value, int | float):
            out[name] = float(value) if value == value else None  # NaN -> None
    return out


def record_model_promotion(
    store: DurableStore,
    *,
    model: str,
    deployed: str,
    metrics: Mapping[str, Any],
    actor: str = LEARNING_ACTOR,
    clock: Clock = utc_now,
) -> None:
    """Record that ``deployed`` now serves as ``model``, with its held-out metrics.

    Args:
        store: the durable store of the environment.
        model: the model's role, e.g. ``engagement_scorer``.
        deployed: what serves it now, e.g. ``logistic_regression`` or ``prior_only_baseline``.
        metrics: held-out figures (``auc``, ``log_loss``, ``brier``...); non-numbers dropped.
        actor: who promoted it (``learning_engine``, or ``operator:<user>`` for a manual one).
    """
    now = clock()
    value = {"deployed": deployed, **_finite(metrics), "promoted_at": now.isoformat()}
    store.set_config(MODEL_KEY_PREFIX + model, value, actor=actor, reason=f"{model} promoted")
    record_audit(
        store.engine,
        environment=store.environment,
        event_type=EVENT_MODEL_PROMOTED,
        actor=actor,
        component="learning",
        data={"model": model, "deployed": deployed, **_finite(metrics)},
        clock=lambda: now,
    )


def record_policy_estimates(
    store: DurableStore,
    *,
    regret_estimate: float | None,
    values: Mapping[str, float] | None = None,
    actor: str = LEARNING_ACTOR,
    clock: Clock = utc_now,
) -> None:
    """Record the latest regret estimate (reward per post given up against the best policy
    found by offline evaluation) and the policies' estimated values."""
    store.set_config(
        POLICY_ESTIMATES_KEY,
        {
            "regret_estimate": regret_estimate,
            "values": _finite(values or {}),
            "estimated_at": clock().isoformat(),
        },
        actor=actor,
        reason="offline policy evaluation",
    )
