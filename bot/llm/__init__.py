"""Chat models: the protocol the core calls, the OpenAI client, and a scripted model for tests."""

from bot.llm.model import ChatModel, ModelReply, Usage
from bot.llm.openai_model import ModelConfig, OpenAIChatModel
from bot.llm.scripted import ScriptedModel, ScriptedRequest

__all__ = ["ChatModel", "ModelConfig", "ModelReply", "OpenAIChatModel", "ScriptedModel", "ScriptedRequest", "Usage"]
