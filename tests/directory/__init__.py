"""Directory tests; the conformance suite's asserts get pytest's rewriting (it is no test_ module)."""

import pytest

pytest.register_assert_rewrite("tests.directory.conformance")
