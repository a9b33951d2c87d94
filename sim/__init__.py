"""The TE core (network model, paths, decisions, loads) and the fluid gymnasium environment built on
it. The Mininet-backed environment, which drives a real controller, is the lab's
(:mod:`lab.mininet_env`).

``import sim`` registers the fluid environment with gymnasium as ``ryute/TE-v0`` (gymnasium 1.x
has no plugin entry points, so a package registers its ids when it is imported; importing
gymnasium costs about 25 ms beside numpy); the environment's module, :mod:`sim.env`, is imported
only when an environment is made.
"""
import gymnasium as _gym

ENV_ID = "ryute/TE-v0"

if ENV_ID not in _gym.registry:  # re-imports must not warn about overriding
    _gym.register(id=ENV_ID, entry_point="sim.env:TEEnv")
