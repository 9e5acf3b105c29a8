"""Delivery of messages and call ends to the business: webhook and e-mail, each through a
durable on-disk outbox (at least once, in order, across restarts)."""

from gateway.notify.notifier import Notifier

__all__ = ["Notifier"]
