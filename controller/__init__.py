"""The os-ken OpenFlow application, its REST API and its subcommands (``ryute controller``, the
operator's client); the ``ryute`` command itself is :mod:`lab.cli`.

Importing this package does not import os-ken; only ``controller.app`` does.
"""
