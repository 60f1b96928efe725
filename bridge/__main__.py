"""`python -m bridge` is `se3-bridge`."""

from bridge.cli import main

raise SystemExit(main())
