from __future__ import annotations

from pathlib import Path

import pytest

from asm_fer.fixtures import make_fixtures, write_ferplus_fixture


@pytest.fixture(scope="session")
def ferplus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ferplus_fixture(tmp_path_factory.mktemp("ferplus"))


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `asm-fer fixtures` writes: a FER+-layout dataset, a tiny trained bundle, parity vectors."""
    out = tmp_path_factory.mktemp("fixtures")
    make_fixtures(out)
    return out
