"""The error tree: stable, unique codes, and the client-side round trip from a code to the same class."""

from __future__ import annotations

import pytest

from nephelae import errors


def test_codes_are_unique_and_stable() -> None:
    codes = [cls.code for cls in errors.error_classes()]
    assert len(codes) == len(set(codes))
    assert {"invalid_input", "not_found", "conflict", "unauthenticated", "forbidden"} <= set(codes)


@pytest.mark.parametrize("cls", errors.error_classes())
def test_code_rebuilds_the_same_class(cls: type[errors.NephelaeError]) -> None:
    rebuilt = errors.error_for_code(cls.code, "some detail")
    assert type(rebuilt) is cls
    assert rebuilt.detail == "some detail"
    assert str(rebuilt) == f"{cls.code}: some detail"


def test_unknown_code_is_kept() -> None:
    rebuilt = errors.error_for_code("quota_exceeded", "too much")
    assert isinstance(rebuilt, errors.NephelaeError)
    assert rebuilt.code == "quota_exceeded"
