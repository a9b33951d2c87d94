"""The TE core (network model, paths, decisions, loads) and the gymnasium environments built on it."""
