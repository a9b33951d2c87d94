"""Pieces of the simulation environments that must not depend on gymnasium.

:mod:`sim.envs.encoding` turns what a controller can measure into the agent's observation and the
agent's action into a :class:`~sim.decision.Decision`. The gymnasium environment (:mod:`sim.env`)
and the agent at decision time use the very same code, so training and serving cannot drift apart.
"""
