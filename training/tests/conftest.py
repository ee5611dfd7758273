from __future__ import annotations

from pathlib import Path

import pytest

from asm_fer.fixtures import write_ferplus_fixture


@pytest.fixture(scope="session")
def ferplus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ferplus_fixture(tmp_path_factory.mktemp("ferplus"))
