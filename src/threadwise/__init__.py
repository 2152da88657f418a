"""threadwise: will threads make my Python code faster?  Measured, not guessed."""
__version__ = "0.1.0"
