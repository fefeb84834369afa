"""`python -m research_agent`: the same as the `research-agent` command."""

from research_agent.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
