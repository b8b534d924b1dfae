"""MPR: measure sponsor-brand exposure in sports broadcast video."""

__version__ = "0.1.0"
