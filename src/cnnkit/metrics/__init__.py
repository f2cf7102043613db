"""Metrics and their plots."""
