"""`python -m collectors`: the same as the `se3-collector` command."""

from collectors.cli import main

raise SystemExit(main())
