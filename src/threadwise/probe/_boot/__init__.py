"""The probe's start-up hook lives here (``sitecustomize.py``).

This directory is put first on the wrapped program's PYTHONPATH; it is a
package only so that it is installed with threadwise.  Nothing imports it.
"""
