"""Helpers of the zero-shot tests."""

from __future__ import annotations

from tests.conftest import run_text_cli as run_cli  # noqa: F401 - shared by the tests here
