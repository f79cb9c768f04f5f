"""The import direction of DESIGN §2: main -> agents -> tools, memory, prompts -> core.

`sim` implements tools' protocols and may import core and tools; `bench` may import everything;
nothing imports bench or main; tools never imports agents; core imports no project package.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"core", "tools", "sim", "agents", "memory", "prompts", "bench", "main"}
ALLOWED = {
    "core": {"core"},
    "tools": {"core", "tools"},
    "memory": {"core", "memory", "tools"},
    "prompts": {"core", "prompts"},
    "sim": {"core", "tools", "sim"},
    "agents": {"core", "tools", "memory", "prompts", "agents", "sim"},
    "bench": PROJECT - {"main"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & PROJECT


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_follow_the_layering(package):
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) - ALLOWED[package]
        if wrong:
            bad.append(f"{path.relative_to(ROOT)} imports {sorted(wrong)}")
    assert not bad, "\n".join(bad)
