"""propbot's tools: typed async functions the model may call, and the property-management domain they act on.

The public face for writing a tool: `Registry`, `ToolContext`, `ToolResult` and the presentation types.
"""

from tools.presentation import Detail, Presentation, PresentationItem
from tools.registry import (
    BUILTIN_REGISTRIES,
    Registry,
    ToolArgumentError,
    ToolContext,
    ToolDefinitionError,
    ToolResult,
    ToolSpec,
    builtin_tools,
    load_registry,
)

__all__ = [
    "BUILTIN_REGISTRIES",
    "Detail",
    "Presentation",
    "PresentationItem",
    "Registry",
    "ToolArgumentError",
    "ToolContext",
    "ToolDefinitionError",
    "ToolResult",
    "ToolSpec",
    "builtin_tools",
    "load_registry",
]
