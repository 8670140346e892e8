"""Releases registry (and, later, traffic assignment, shadow, canary and rollback)."""
