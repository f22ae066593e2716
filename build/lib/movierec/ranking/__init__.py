"""Top-K ranking: metric definitions, per-user item sets, block scoring, popularity baseline."""
