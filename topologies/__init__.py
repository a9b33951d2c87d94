"""Topology and traffic catalog: built-in networks, file loaders, Mininet topologies, traffic series."""
