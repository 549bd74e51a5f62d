"""Helpers shared by the test folders (unit/, agent/, e2e/): ports, polling, paths, agents, golden files.

Fixtures and hooks stay in tests/conftest.py; everything here is plain code that a test imports
(`from support.waiting import wait_until`). tests/ is on sys.path through pytest's `pythonpath`.
"""
