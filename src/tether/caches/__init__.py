"""Caches that save model and tool calls: exact responses, semantic final answers, tool results.

Every cache is opt-in per release (`[cache]`), keyed so that no entry crosses tenants (nor users,
unless the release says its answers are user-independent), and kept in the database by default or
in Redis when `TETHER_REDIS_URL` is set. See docs/caches.md.
"""
