"""A call's checks in the caller (``dispatch.validation``), before anything is enqueued."""

from __future__ import annotations

import pytest

from dispatch.validation import check_options


@pytest.mark.parametrize("options", [[None, None], "ab", [["timeout", 1]]])
def test_options_must_be_a_mapping(options):
    with pytest.raises(ValueError, match="options must be a mapping"):
        check_options(options)
