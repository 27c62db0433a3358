"""Learning: features, rewards, the scorer, the bandits, the policy and offline evaluation (no I/O)."""
