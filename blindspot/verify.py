"""``python -m blindspot.verify``: reproduce the theory claims one by one (placeholder registry)."""

import sys


def main(argv: list[str] | None = None) -> int:
    """Run the registered claims and return the exit status."""
    print("no claims are registered yet: 0 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
