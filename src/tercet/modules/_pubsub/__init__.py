"""Publish-Subscribe (XEP-0060) without transport, shared by the ``pubsub`` component
and ``pep`` (XEP-0163): the engine, node configuration, the error table, caps tracking
and the stanza layer."""

from tercet.modules._pubsub.config import NodeConfig
from tercet.modules._pubsub.engine import Item, Limits, Node, Service
from tercet.modules._pubsub.errors import PubsubError
from tercet.modules._pubsub.pep import PepItemEvent, PepService

__all__ = ["Item", "Limits", "Node", "NodeConfig", "PepItemEvent", "PepService",
           "PubsubError", "Service"]
