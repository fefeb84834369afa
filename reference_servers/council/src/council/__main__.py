"""`python -m council`: the same as the `council` command."""

from council.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
