"""Model clients behind one interface, pricing, retries and fallback."""

from tether.models.base import (
    ChatModel,
    Message,
    ModelError,
    ModelResponse,
    ToolCall,
    ToolSpec,
    TransientModelError,
    Usage,
)

__all__ = [
    "ChatModel",
    "Message",
    "ModelError",
    "ModelResponse",
    "ToolCall",
    "ToolSpec",
    "TransientModelError",
    "Usage",
]
