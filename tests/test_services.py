"""The services container is complete when built: no field has a default to be filled in later,
and the only one that may be absent (``directory``) says so in its type."""

from __future__ import annotations

import dataclasses
import typing

from broker.services import Services


def test_every_field_is_given_at_construction() -> None:
    defaulted = [f.name for f in dataclasses.fields(Services)
                 if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert defaulted == []


def test_only_the_directory_may_be_absent() -> None:
    hints = typing.get_type_hints(Services)
    optional = sorted(name for name, hint in hints.items() if type(None) in typing.get_args(hint))
    assert optional == ["directory"]


def test_built_services_have_every_part(app_factory: typing.Any) -> None:
    services = app_factory().app.state.services
    assert isinstance(services, Services)
    assert all(getattr(services, f.name) is not None for f in dataclasses.fields(Services) if f.name != "directory")
    assert set(services.readiness) >= {"state", "keys", "database"}
