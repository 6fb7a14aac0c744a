"""``features.yaml``: a mistake is named by the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.options import OptionsError, read_options


def test_an_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text("max_event_types: 10\nmax_product_features: -1\n")
    with pytest.raises(OptionsError) as caught:
        read_options(tmp_path)
    assert f"{path}, line 2, key max_product_features: Input should be greater" in str(caught.value)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    (tmp_path / "features.yaml").write_text("max_event_types: 10\nmax_event_types: 20\n")
    with pytest.raises(OptionsError, match="line 2, key max_event_types: the key appears twice"):
        read_options(tmp_path)
