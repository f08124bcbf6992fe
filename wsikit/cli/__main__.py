"""``python -m wsikit.cli``."""

from wsikit.cli.main import main

main()
