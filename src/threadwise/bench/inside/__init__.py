"""Code that runs inside a target interpreter: standard library only, Python 2.7 and 3.8+.

The host ships these files to the target (see ``threadwise.bench.interpreters``); nothing
is installed into the target.  ``workloads`` is the catalog, ``agent`` runs a cell.
"""
