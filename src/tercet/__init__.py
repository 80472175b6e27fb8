"""Tercet: an XMPP server in Python with a small core and everything else a module."""

__version__ = "0.1.0"
SOFTWARE_NAME = "Tercet"
