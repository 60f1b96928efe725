"""What only shows URLs does not load the HTTP client (bridge.urltext, not bridge.http)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["bridge.config", "bridge.rules", "bridge.status",
                                    "bridge.urls", "console.app"])
def test_importing_does_not_load_requests(module: str) -> None:
    """The config, the rules, `status` and the console import no requests/urllib3."""
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
