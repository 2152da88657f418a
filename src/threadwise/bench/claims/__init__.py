"""The blog post's claims as experiments: ``experiments`` measures, ``verdicts`` judges."""
from .experiments import *  # noqa: F401,F403  (re-export during the split)
