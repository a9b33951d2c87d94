"""The os-ken OpenFlow application, its REST API and its subcommands (``ryute controller``, the
operator's client); the ``ryute`` command itself is :mod:`lab.cli`.

Importing this package does not import os-ken; the modules that speak OpenFlow do (``app``,
``openflow``, ``discovery``, ``hosts``, and those that use them).
"""
