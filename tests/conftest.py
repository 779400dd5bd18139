"""Fixtures shared by the suites that run the real stack (integration, browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.devstack import ManagedProcess, Stack, running_stack
from tests.livestack import EdgeFactory, start_edge_cameras


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One LiveKit + API per test module (starting them takes ~1 s)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def start_cameras(stack: Stack, tmp_path: Path) -> Iterator[EdgeFactory]:
    """Create cameras in the API and run one edge process publishing them."""
    started: list[ManagedProcess] = []

    def _start(*sources: dict[str, Any], name: str = "edge") -> tuple[list[str], ManagedProcess]:
        ids, edge = start_edge_cameras(stack, tmp_path, sources, name=name)
        started.append(edge)
        return ids, edge

    yield _start
    for edge in started:
        edge.stop()
