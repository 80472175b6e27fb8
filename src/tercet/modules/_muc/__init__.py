"""Multi-User Chat (XEP-0045) internals of the ``muc`` component module.

``api`` is the surface other modules (muc_mam, ...) build on; the rest is private.
"""
