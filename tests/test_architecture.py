"""The house: one import root, the declared layering kept, no import cycles, a wheel holding `mugpos` alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_of_pyproject_are_kept() -> None:
    """Layers (cli > agents | web > streams > storage > training > domain > core > schemas) and the bans."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _cycles(graph: Any) -> list[tuple[str, ...]]:
    """Each direct import a -> b for which b leads back to a: the shortest such circle, per import."""
    found = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                found.append((importer, *back))
    return found


def test_no_module_imports_itself_through_others() -> None:
    """Every import counts, deferred ones inside functions included: no cycle is hidden."""
    import grimp

    graph = grimp.build_graph("mugpos")
    assert len(graph.modules) > 60
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    import grimp

    graph = grimp.ImportGraph()
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")):
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [("a", "b", "c", "a"), ("b", "c", "a", "b"), ("c", "a", "b", "c")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    args = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [built] = out.glob("mugpos-*.whl")
    return built


def test_the_wheel_holds_the_mugpos_package_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"mugpos"}
    for expected in (
        "mugpos/core/settings.py",
        "mugpos/streams/app.py",
        "mugpos/web/dashboard.html",
        "mugpos/schemas/image_event.avsc",
        "mugpos/training/synth/layout.py",
        "mugpos/cli/main.py",
    ):
        assert expected in names, expected
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mugpos = mugpos.cli.main:main" in entry


def test_from_the_wheel_mugpos_imports_and_generic_names_do_not(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    probe = (
        "import importlib.util, mugpos.core.settings as s; "
        "print(s.__file__); "
        "print([n for n in ('models', 'streams', 'rules', 'control', 'agents', 'schemas') "
        "if importlib.util.find_spec(n) is not None])"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    where, found = result.stdout.splitlines()
    assert where.startswith(str(tmp_path)) and found == "[]"
