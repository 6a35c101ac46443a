"""Warnings raised in civio's own code fail the suite; other packages' do not."""

from __future__ import annotations

import warnings

import pytest


def test_a_warning_from_civios_own_code_is_an_error() -> None:
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit(
            "a deprecated call", DeprecationWarning, "civio/sample.py", 1, module="civio.sample"
        )
    with pytest.raises(UserWarning):
        warnings.warn_explicit("odd", UserWarning, "civio/sample.py", 1, module="civio.sample")


def test_a_third_party_deprecation_is_not_civios_to_fix() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(
            "a deprecated call", DeprecationWarning, "lib/sample.py", 1, module="somelib.sample"
        )
    assert caught == []
