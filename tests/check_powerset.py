"""Every selection of the `examples` patterns in copier.yml generates a project that
passes its own checks. Slow (each selection is a project suite): `nox -s powerset`."""

from __future__ import annotations

from pathlib import Path

import pytest

from render import SAMPLE_ANSWERS, every_selection, render, selection_id
from test_generation import assert_fully_rendered, assert_passes_its_own_checks


@pytest.mark.parametrize("selection", every_selection(), ids=selection_id)
def test_every_selection_passes_its_own_checks(
    tmp_path: Path, selection: tuple[str, ...]
) -> None:
    project = tmp_path / "project"
    render(project, {**SAMPLE_ANSWERS, "examples": list(selection)})
    assert_fully_rendered(project)
    assert_passes_its_own_checks(project)
