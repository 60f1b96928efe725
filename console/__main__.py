"""`python -m console`: the same as `se3-console`."""

from console.cli import main

raise SystemExit(main())
