"""The os-ken OpenFlow application and its command-line glue.

Importing this package does not import os-ken; only ``controller.app`` does.
"""
