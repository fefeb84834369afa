"""The command line: run the server over stdio (default) or streamable HTTP.

Every setting is a flag named after its environment variable without the `MCP_`
prefix (`MCP_SAMPLING_TIMEOUT` is `--sampling-timeout`); a flag overrides its variable.
Choices take any case (`--log-level debug`); a yes/no setting is a plain flag
(`--http-allow-unauthenticated`, `--no-http-allow-unauthenticated`). Secrets
(`MCP_SAMPLING_API_KEY`) are environment variables only: a command line is visible to
every user of the machine. Over stdio, stdout carries the protocol only: logs go to
stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Callable, Sequence

from pydantic.fields import FieldInfo

from . import __doc__ as description
from . import __version__
from .core import (
    ConfigurationError,
    PrincipalInLogs,
    ServerSettings,
    configure_tracing,
    load_settings,
)
from .core._settings import env_name, flag_name, is_secret
from .server import create_server, freeze_start_up, settings_classes

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Each option can also be set with the environment variable it names.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    for settings_class in settings_classes():
        group = parser.add_argument_group(settings_class.__doc__)
        for field, info in settings_class.model_fields.items():
            env = env_name(settings_class, field)
            if not is_secret(info.annotation):
                group.add_argument(flag_name(env), dest=env, **_flag_options(env, info))
    return parser


def _flag_options(env: str, info: FieldInfo) -> dict[str, typing.Any]:
    """How a setting reads from the command line: a yes/no flag, a choice, a value."""
    help_text = f"{info.description} [{env}; default: {info.default}]"
    if info.annotation is bool:
        return {"action": argparse.BooleanOptionalAction, "help": help_text}
    choices = _literal_choices(info.annotation)
    if choices:
        return {
            "type": _any_case(choices),
            "choices": choices,
            "metavar": "{" + ",".join(choices) + "}",
            "help": help_text,
        }
    return {"metavar": env.removeprefix("MCP_"), "help": help_text}


def _literal_choices(annotation: object) -> tuple[str, ...] | None:
    """The values of a `Literal` (or optional `Literal`) setting, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return typing.get_args(candidate)
    return None


def _any_case(choices: tuple[str, ...]) -> Callable[[str], str]:
    by_folded = {choice.casefold(): choice for choice in choices}
    return lambda value: by_folded.get(value.casefold(), value)


def configure_logging(level: str) -> None:
    """Logs to stderr; each line inside a tool call names its caller by a hash."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(PrincipalInLogs())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(principal)s]: %(message)s"
        )
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("fastmcp").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    flags = parser.parse_args(argv)
    os.environ.update(
        {
            env: ("true" if value else "false") if isinstance(value, bool) else value
            for env, value in vars(flags).items()
            if value is not None
        }
    )
    try:
        settings = load_settings(settings_classes())
        server_settings = settings.of(ServerSettings)
        configure_logging(server_settings.log_level)
        configure_tracing()
        # Pattern data (personas, a corpus) or the server-side LLM may be unusable.
        server = create_server(*settings.values())
    except ValueError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: {ConfigurationError.of(error)}", file=sys.stderr)
        return 2
    freeze_start_up()
    if server_settings.transport == "http":
        # Stateful sessions: the server sends sampling requests back on them.
        logger.info(
            "serving streamable HTTP on http://%s:%d/mcp",
            server_settings.host,
            server_settings.port,
        )
        server.run(
            "http",
            host=server_settings.host,
            port=server_settings.port,
            show_banner=False,
        )
    else:
        logger.info("serving on stdio")
        server.run("stdio", show_banner=False)
    return 0
