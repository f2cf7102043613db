"""Data: readers for every layout, the synthetic shapes, transforms."""
