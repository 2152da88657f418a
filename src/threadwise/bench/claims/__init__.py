"""The blog post's claims: ``experiments`` measures them, ``verdicts`` judges the numbers.

    Experiments(interpreters, doc).run() --> ResultsDocument --verdicts.judge()--> [Claim]
"""
from .experiments import Experiments
from .verdicts import CLAIM_IDS, CLAIM_TEXT, JUDGES, judge

__all__ = ["CLAIM_IDS", "CLAIM_TEXT", "Experiments", "JUDGES", "judge"]
