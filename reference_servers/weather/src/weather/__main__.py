"""`python -m weather`: the same as the `weather` command."""

from weather.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
