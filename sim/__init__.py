"""The TE core (network model, paths, decisions, loads) and the fluid gymnasium environment built on
it. The Mininet-backed environment, which drives a real controller, is the lab's
(:mod:`lab.mininet_env`)."""
