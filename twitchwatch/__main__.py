"""``python -m twitchwatch`` runs the CLI."""

import sys

from twitchwatch.cli import main

sys.exit(main())
