"""Missing AMBER annotation files skip the AMBER tests locally and fail them in CI (CI=true)."""

from __future__ import annotations

import pytest

from tests.eval.amber import amber_helpers


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_missing_amber_fails_in_ci(monkeypatch, value):
    monkeypatch.setattr(amber_helpers, "shared_amber_dir", lambda: None)
    with pytest.raises(pytest.fail.Exception, match=r"CI=true, so the AMBER tests must run"):
        amber_helpers.require_shared_amber({"CI": value})


@pytest.mark.parametrize("env", [{}, {"CI": ""}, {"CI": "false"}, {"CI": "0"}])
def test_missing_amber_skips_locally(monkeypatch, env):
    monkeypatch.setattr(amber_helpers, "shared_amber_dir", lambda: None)
    with pytest.raises(pytest.skip.Exception, match=r"\.\./shared/amber\) not available"):
        amber_helpers.require_shared_amber(env)


def test_present_amber_is_returned_in_ci_and_locally(monkeypatch, tmp_path):
    monkeypatch.setattr(amber_helpers, "shared_amber_dir", lambda: tmp_path)
    assert amber_helpers.require_shared_amber({"CI": "true"}) == tmp_path
    assert amber_helpers.require_shared_amber({}) == tmp_path
