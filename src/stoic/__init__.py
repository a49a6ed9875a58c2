"""Stoic: keep services answering while their dependencies fail."""

__version__ = "0.1.0"
