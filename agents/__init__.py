"""Routing policies (RL agent, fallback, baselines), training and evaluation."""
