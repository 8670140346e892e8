"""Webhooks: tenants subscribe URLs to events; signed deliveries leave an outbox with retries.

docs/webhooks.md describes the whole path; `store/webhooks.py` holds the rows.
"""
