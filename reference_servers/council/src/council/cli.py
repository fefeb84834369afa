"""The command line: run the server over stdio (default) or streamable HTTP.

Every setting is a flag named after its environment variable without the `MCP_`
prefix (`MCP_SAMPLING_TIMEOUT` is `--sampling-timeout`); a flag overrides its variable.
Secrets (`MCP_SAMPLING_API_KEY`) are environment variables only: a command line is
visible to every user of the machine. Over stdio, stdout carries the protocol only:
logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from . import __doc__ as description
from . import __version__, patterns
from .config import GatewaySettings, ServerSettings
from .http_guard import protect
from .server import create_server

logger = logging.getLogger(__name__)


class ConfigurationError(Exception):
    """Settings that cannot be used; the message names each variable and flag."""


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of the server: its own, the gateway's, each pattern's."""
    return [ServerSettings, GatewaySettings] + [p.Settings for p in patterns.discover()]


def env_name(settings_class: type[BaseSettings], field: str) -> str:
    return f"{settings_class.model_config['env_prefix']}{field}".upper()


def flag_name(env: str) -> str:
    return "--" + env.removeprefix("MCP_").lower().replace("_", "-")


def is_secret(annotation: object) -> bool:
    return SecretStr in (annotation, *typing.get_args(annotation))


def literal_choices(annotation: object) -> tuple[str, ...] | None:
    """The values of a `Literal` (or optional `Literal`) setting, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return typing.get_args(candidate)
    return None


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
            if is_secret(info.annotation):
                continue
            choices = literal_choices(info.annotation)
            group.add_argument(
                flag_name(env),
                dest=env,
                choices=choices,
                metavar=None if choices else field.upper(),
                help=f"{info.description} [{env}; default: {info.default}]",
            )
    return parser


def load_settings() -> dict[type[BaseSettings], BaseSettings]:
    """Read every settings class from the environment, reporting all problems at once."""
    loaded: dict[type[BaseSettings], BaseSettings] = {}
    problems: list[str] = []
    for settings_class in settings_classes():
        settings = _load(settings_class, problems)
        if settings is not None:
            loaded[settings_class] = settings
    if problems:
        raise ConfigurationError("invalid configuration:\n" + "\n".join(problems))
    return loaded


def _load(
    settings_class: type[BaseSettings], problems: list[str]
) -> BaseSettings | None:
    try:
        return settings_class()
    except ValidationError as error:
        for problem in error.errors():
            if not problem["loc"]:  # a rule across settings; its message names them
                problems.append(f"  {problem['msg']}")
                continue
            field = str(problem["loc"][0])
            env = env_name(settings_class, field)
            if is_secret(settings_class.model_fields[field].annotation):
                # No flag to name, and never the value.
                problems.append(f"  {env}: {problem['msg']}")
            else:
                problems.append(
                    f"  {env} ({flag_name(env)}): {problem['msg']}"
                    f" (got {problem['input']!r})"
                )
        return None


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("fastmcp").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    flags = parser.parse_args(argv)
    os.environ.update({env: value for env, value in vars(flags).items() if value})
    try:
        settings = load_settings()
    except ConfigurationError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return 2
    server_settings = typing.cast(ServerSettings, settings[ServerSettings])
    configure_logging(server_settings.log_level)
    try:
        server = create_server(typing.cast(GatewaySettings, settings[GatewaySettings]))
    # A pattern's data files (e.g. personas) or the server-side LLM cannot be used.
    except ValueError as error:
        print(f"{parser.prog}: invalid configuration: {error}", file=sys.stderr)
        return 2
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
            **protect(server, server_settings),
        )
    else:
        logger.info("serving on stdio")
        server.run("stdio", show_banner=False)
    return 0
