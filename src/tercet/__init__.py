"""Tercet: an XMPP server in Python with a small core and everything else a module."""

__version__ = "0.2.0"
SOFTWARE_NAME = "Tercet"
