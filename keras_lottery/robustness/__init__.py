"""Robustness of tickets (placeholder)."""
