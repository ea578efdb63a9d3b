"""``python -m coord``: the ``coord`` command."""

from coord.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
