"""The shape of emocam.edge: wings imported one way, no cycles, no TensorFlow, nothing from train/convert.

Read from the source with ``ast`` (every import, also those inside functions), so a lazy import
that breaks the direction is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EDGE = Path(__file__).resolve().parents[2] / "edge"
# A wing may import the wings before it; the shared modules import no wing at all.
WING_ORDER = ("capture", "vision", "tracking", "mqtt", "service")
SHARED = ("closed_stdout", "errors", "field_checks", "log_limit", "native_stderr")
# The two edges across the order, each for a reason: the tracker builds the wire contract's values
# (EmotionEvent, FaceInView, Box) so nothing converts them on the way out; `emocam listen` is a
# subscriber and reads payloads through the public subscriber API, as users' code does.
ALLOWED = {("tracking", "mqtt.wire"), ("mqtt", "payloads")}
FORBIDDEN_ROOTS = ("tensorflow", "keras", "emocam.train", "emocam.convert")


def _module_name(path: Path) -> str:
    parts = path.relative_to(EDGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = {_module_name(p): _imports(p) for p in sorted(EDGE.rglob("*.py"))}


def _wing(module: str) -> str:
    return module.split(".")[0]


def test_every_module_is_in_a_wing_or_shared() -> None:
    loose = {m for m in MODULES if _wing(m) not in (*WING_ORDER, *SHARED, "", "__main__", "payloads")}
    assert loose == set(), f"put {sorted(loose)} in one of the wings {WING_ORDER}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_one_way(module: str) -> None:
    ours = {name.removeprefix("emocam.edge.") for name in MODULES[module] if name.startswith("emocam.edge.")}
    wing = _wing(module)
    for target in ours:
        target_wing = _wing(target)
        if target_wing in SHARED or target_wing == wing or (wing, target) in ALLOWED:
            continue
        if wing in SHARED:
            pytest.fail(f"shared module {module} imports the wing module {target}")
        if wing == "payloads":  # the subscriber API shares the wire contract and nothing else
            assert target == "mqtt.wire", f"payloads imports {target}"
            continue
        if wing in WING_ORDER and target_wing in WING_ORDER:
            assert WING_ORDER.index(target_wing) < WING_ORDER.index(wing), (
                f"{module} imports {target}: {wing} may import only {WING_ORDER[:WING_ORDER.index(wing)]}")
        elif wing in WING_ORDER:
            pytest.fail(f"{module} imports {target}, which is not a wing or a shared module")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_device_never_imports_tensorflow_or_the_workstation_packages(module: str) -> None:
    bad = {name for name in MODULES[module] if name.startswith(FORBIDDEN_ROOTS)}
    assert bad == set(), f"{module} imports {sorted(bad)}"
