"""The directory conformance suite (tests/directory/conformance.py) against every backend:
static, OpenLDAP slapd and Samba AD, from the one ``directory`` fixture in conftest.py."""

from __future__ import annotations

from tests.directory.conformance import DirectoryConformance


class TestDirectoryConformance(DirectoryConformance):
    """Static, slapd (marker ldap) and Samba AD (marker ad): ``-m "not ad"`` leaves AD out."""
