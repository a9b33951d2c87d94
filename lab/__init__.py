"""The lab: what drives a testbed (Open vSwitch switches in Mininet) with a real controller in
it. The Mininet testbed, traffic replay, the emulation monitor, the Mininet-backed environment,
``ryute emulate``, the demo, Mininet fine-tuning and the ``ryute`` command line.

The top layer (``topologies <- sim <- agents <- controller <- lab``): it may use every package
below it, and none of them imports it or starts it as a process.
"""
