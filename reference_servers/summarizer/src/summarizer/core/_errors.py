"""The gateway's errors. Each is a `ToolError`, so its message reaches the client
as is: it says what went wrong and what to do about it."""

from fastmcp.exceptions import ToolError


class LLMError(ToolError):
    """A request for model output failed; the message says why and what to do."""


class SamplingUnavailableError(LLMError):
    """Neither the client nor the server can provide an LLM."""

    def __init__(self) -> None:
        super().__init__(
            "This tool needs an LLM, but the connected MCP client does not support "
            "sampling and this server has no LLM of its own. Either connect with a "
            "client that samples (fast-agent and docker-agent support sampling with "
            "tools; VS Code with GitHub Copilot, goose and the MCP Inspector sample "
            "text; Claude Desktop, Claude Code and Cursor do not sample), or give the "
            "server a model of its own: set MCP_SAMPLING_PROVIDER (openai or "
            "anthropic), MCP_SAMPLING_MODEL and, for a hosted API, MCP_SAMPLING_API_KEY "
            "(see 'Server-side LLM' in the project's docs, docs/server-side-llm.md)."
        )


class SamplingTimeoutError(LLMError):
    """The LLM did not answer in time."""


class SamplingFailedError(LLMError):
    """The LLM refused, failed, or answered with something unusable."""


class StructuredOutputError(LLMError):
    """The LLM kept answering with something that is not the asked-for type."""


class AgentLimitError(LLMError):
    """An agent loop used up its iterations or tool calls without finishing."""
