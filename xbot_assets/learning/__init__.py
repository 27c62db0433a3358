"""Learning: features, rewards, scorer, bandits, policy and offline evaluation (no I/O)."""
