"""The generated server plus the fixtures of the MCP conformance suite; for tests only.

The suite `@modelcontextprotocol/conformance` (`conformance server --url ...`) calls
tools, resources and prompts of fixed names (`test_simple_text`, `test://static-text`,
`test_simple_prompt`, ...) and checks what they return or send. This module builds the
real server with `create_server()` (our tools and settings), adds those fixtures to the
same app and serves it over HTTP as `summarizer --transport http` does (Host/Origin
guard included), so the suite tests our stack rather than a stand-in. Each fixture
does exactly what its scenario checks (names, arguments, schemas, notifications); see
the scenarios in the suite's `dist/index.js`.

    python conformance_server.py --port 8765     # serves http://127.0.0.1:8765/mcp

Run it without `MCP_HTTP_TOKEN` (the suite sends no token) and without
`MCP_SAMPLING_MODE=always` (that would answer `test_sampling` with the server-side LLM
instead of the client).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
from collections.abc import Sequence
from typing import Any

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.prompts import Message
from mcp import types
from mcp.server.context import ServerRequestContext
from summarizer.core import LLM, GatewaySettings, Prompt, ServerSettings
from summarizer.server import create_server

RED_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
"""A 1x1 red PNG, base64."""

SILENT_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA=="
"""One silent sample of 16-bit mono 8 kHz WAV, base64."""

# The schemas the elicitation scenarios check, field by field.
USER_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}
DEFAULTS_SCHEMA: dict[str, Any] = {  # SEP-1034: a default for every primitive type
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {
            "type": "boolean",
            "description": "Verification status",
            "default": True,
        },
    },
}
ENUMS_SCHEMA: dict[str, Any] = {  # SEP-1330: the five kinds of enum
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


def image() -> types.ImageContent:
    return types.ImageContent(type="image", data=RED_PIXEL_PNG, mime_type="image/png")


def text_resource(uri: str, text: str, mime_type: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource",
        resource=types.TextResourceContents(uri=uri, mime_type=mime_type, text=text),
    )


def add_content_tools(mcp: FastMCP) -> None:
    """Tools that return each kind of content block, and one that fails."""

    @mcp.tool
    def test_simple_text() -> str:
        """Returns one text block."""
        return "This is a simple text response for testing."

    @mcp.tool
    def test_image_content() -> list[types.ContentBlock]:
        """Returns one PNG image block."""
        return [image()]

    @mcp.tool
    def test_audio_content() -> list[types.ContentBlock]:
        """Returns one WAV audio block."""
        return [
            types.AudioContent(type="audio", data=SILENT_WAV, mime_type="audio/wav")
        ]

    @mcp.tool
    def test_embedded_resource() -> list[types.ContentBlock]:
        """Returns one embedded text resource."""
        return [
            text_resource(
                "test://embedded-resource",
                "This is an embedded resource content.",
                "text/plain",
            )
        ]

    @mcp.tool
    def test_multiple_content_types() -> list[types.ContentBlock]:
        """Returns a text, an image and an embedded resource block."""
        return [
            types.TextContent(type="text", text="Multiple content types test:"),
            image(),
            text_resource(
                "test://mixed-content-resource",
                json.dumps({"test": "data", "value": 123}),
                "application/json",
            ),
        ]

    @mcp.tool
    def test_error_handling() -> str:
        """Always fails: the result has `isError: true`."""
        raise ToolError("This tool intentionally returns an error for testing")


def add_notification_tools(mcp: FastMCP) -> None:
    """Tools that send log and progress notifications while they run."""

    @mcp.tool
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three info-level log messages, 50 ms apart."""
        await ctx.info("Tool execution started")
        await asyncio.sleep(0.05)
        await ctx.info("Tool processing data")
        await asyncio.sleep(0.05)
        await ctx.info("Tool execution completed")
        return "Tool with logging executed successfully"

    @mcp.tool
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50 and 100 of 100, 50 ms apart (if given a token)."""
        await ctx.report_progress(0, total=100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(50, total=100)
        await asyncio.sleep(0.05)
        await ctx.report_progress(100, total=100)
        return "Tool with progress executed successfully"


def add_client_request_tools(mcp: FastMCP, gateway: GatewaySettings) -> None:
    """Tools that send sampling and elicitation requests to the client."""

    @mcp.tool
    async def test_sampling(prompt: str, ctx: Context) -> str:
        """Asks the client's LLM `prompt` and returns its answer.

        Through the server's own gateway (FastMCP 4 has no `ctx.sample`), so the
        request is the one a pattern sends, on either protocol era.
        """
        answer = await LLM(ctx, gateway).complete(Prompt(prompt), max_tokens=100)
        return f"LLM response: {answer}"

    @mcp.tool
    async def test_elicitation(message: str, ctx: Context) -> str:
        """Asks the user for a username and an email address."""
        return "User response: " + await elicit(ctx, message, USER_INFO_SCHEMA)

    @mcp.tool
    async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
        """Elicits a form whose fields all have defaults (SEP-1034)."""
        message = "Test client default value handling - please accept with defaults"
        return "Elicitation completed: " + await elicit(ctx, message, DEFAULTS_SCHEMA)

    @mcp.tool
    async def test_elicitation_sep1330_enums(ctx: Context) -> str:
        """Elicits a form with every kind of enum field (SEP-1330)."""
        message = "Please select values using different enum schema types"
        return "Elicitation completed: " + await elicit(ctx, message, ENUMS_SCHEMA)


async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> str:
    """Elicit with `schema` as is and describe the answer.

    `ctx.elicit` derives its schema from a Python type; the suite checks exact schemas.
    """
    if not ctx.session.check_client_capability(
        types.ClientCapabilities(elicitation=types.ElicitationCapability())
    ):
        raise ToolError("The client does not support elicitation.")
    result = await ctx.session.elicit_form(
        message, schema, related_request_id=ctx.request_id
    )
    return f"action={result.action}, content={json.dumps(result.content)}"


def add_resources(mcp: FastMCP) -> None:
    """A text resource, a binary one and a template."""

    @mcp.resource("test://static-text", mime_type="text/plain")
    def static_text() -> str:
        """A static text resource."""
        return "This is the content of the static text resource."

    @mcp.resource("test://static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A static binary resource: a 1x1 PNG."""
        return base64.b64decode(RED_PIXEL_PNG)

    @mcp.resource("test://template/{id}/data", mime_type="application/json")
    def template_data(id: str) -> str:
        """Data for the id in the URI."""
        return json.dumps(
            {"id": id, "templateTest": True, "data": f"Data for ID: {id}"}
        )


def add_prompts(mcp: FastMCP) -> None:
    """Prompts with no argument, with arguments, with a resource and with an image."""

    @mcp.prompt
    def test_simple_prompt() -> str:
        """A prompt without arguments."""
        return "This is a simple prompt for testing."

    @mcp.prompt
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        """A prompt with two required arguments."""
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @mcp.prompt
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Message]:
        """A prompt that embeds the resource `resourceUri`."""
        embedded = text_resource(
            resourceUri, "Embedded resource content for testing.", "text/plain"
        )
        return [
            Message(embedded),
            Message("Please process the embedded resource above."),
        ]

    @mcp.prompt
    def test_prompt_with_image() -> list[Message]:
        """A prompt with an image."""
        return [Message(image()), Message("Please analyze the image above.")]


def add_completion_and_subscriptions(mcp: FastMCP) -> None:
    """`completion/complete` and `resources/(un)subscribe`.

    Completion is FastMCP 4's `@mcp.completion`. FastMCP 4 has no API for the legacy
    era's `resources/(un)subscribe` (the modern era has `subscriptions/listen`), so
    they go on the low-level `mcp` server, whose decorators became
    `add_request_handler` in mcp 2.x. The suite only checks that the requests
    succeed: completion offers no values, and the fixtures never change, so there
    are no updates to send to subscribers.
    """

    @mcp.completion
    async def complete(
        ref: types.PromptReference | types.ResourceTemplateReference,
        argument: types.CompletionArgument,
        context: types.CompletionContext | None,
    ) -> types.Completion:
        return types.Completion(values=[], total=0, has_more=False)

    async def subscription(
        ctx: ServerRequestContext,
        params: types.SubscribeRequestParams | types.UnsubscribeRequestParams,
    ) -> types.EmptyResult:
        return types.EmptyResult()

    low_level = mcp._mcp_server
    low_level.add_request_handler(
        "resources/subscribe", types.SubscribeRequestParams, subscription
    )
    low_level.add_request_handler(
        "resources/unsubscribe", types.UnsubscribeRequestParams, subscription
    )


def create_conformance_server(settings: ServerSettings) -> FastMCP:
    """Our server (`create_server()`) with every fixture of the conformance suite."""
    gateway = GatewaySettings()
    mcp = create_server(settings, gateway)
    add_content_tools(mcp)
    add_notification_tools(mcp)
    add_client_request_tools(mcp, gateway)
    add_resources(mcp)
    add_prompts(mcp)
    add_completion_and_subscriptions(mcp)
    return mcp


def main(argv: Sequence[str] | None = None) -> None:
    """Serve streamable HTTP the way `summarizer --transport http` does."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = ServerSettings(transport="http", port=args.port)
    server = create_conformance_server(settings)
    # The server guards every way of serving HTTP: Host/Origin, the bearer token.
    server.run("http", host=settings.host, port=settings.port, show_banner=False)


if __name__ == "__main__":
    main()
