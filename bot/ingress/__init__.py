"""Between a platform's ack and the agent: the dispatcher (the core's port), the durable turn queue in a Redis
Stream, and the tracker of background work that shutdown drains."""

from bot.ingress.dispatch import Dispatcher
from bot.ingress.tasks import TaskTracker
from bot.ingress.turn_queue import TurnQueue

__all__ = ["Dispatcher", "TaskTracker", "TurnQueue"]
