"""Where the repository's files are, wherever the test that asks lives."""
from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
SERVICES = REPO / "services"  # the seed's sample service definitions
FIXTURES = TESTS / "fixtures"
JOBSPEC_FIXTURES = FIXTURES / "jobspec"
SPEC_FIXTURES = FIXTURES / "spec"
GOLDEN = TESTS / "golden"
