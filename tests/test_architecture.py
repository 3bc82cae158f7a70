"""The floor plan (DESIGN.md §2, README "Layout"): the core never loads rclpy or ROS message packages, and
each floor imports only the floors below it (or its own). Imports inside functions and TYPE_CHECKING
blocks count: a lazy import is still an arrow."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import perception_pkg

PKG = Path(perception_pkg.__file__).parent

# Bottom first. Same-floor imports are allowed; anything upward is a violation.
FLOORS: list[set[str]] = [
    {"paths", "pose.coco17", "runtime", "geometry3d", "bag"},  # constants, settings/stats, box maths, bag I/O
    {"cards", "decoders", "preprocess", "metrics", "msgs"},  # cards + decoders, tensors, metrics, msg<->numpy
    {"engines"},  # backends; ModelRunner = preprocess -> infer -> decode
    {"detection", "pose", "weather", "completion", "pointcloud", "datasets"},  # the per-task cores
    {"viz"},  # annotated images and RViz markers of core results
    {"sim"},  # synthetic world with exact ground truth
    {"pipelines"},  # message-level frame processing, shared by nodes and replay
    {"replay"},  # routing bag records to pipelines
    {"evaluation"},  # scoring what the pipelines produce (runs them through replay where it must)
    {"ros"},  # the only rclpy
    {"cli", "training"},  # entry points; training needs torch
]
NOT_CORE = ("ros", "cli", "training")  # the only folders allowed to load rclpy / torch
ROS_MODULES = ("rclpy", "rcl_interfaces", "rosidl_runtime_py", "rosidl_parser", "builtin_interfaces")


def _unit(module: str) -> str | None:
    """The floor unit of a perception_pkg module name: ``pose.coco17`` or the first subpackage."""
    parts = module.split(".")
    if parts[0] != "perception_pkg" or len(parts) < 2:
        return None
    if parts[1] == "pose" and len(parts) > 2 and parts[2] == "coco17":
        return "pose.coco17"
    return parts[1] if (PKG / parts[1]).is_dir() or parts[1] == "paths" else None


def _floor(unit: str) -> int:
    for i, floor in enumerate(FLOORS):
        if unit in floor:
            return i
    raise AssertionError(f"{unit} is on no floor: add it to FLOORS (and to the README layout)")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        if name == "perception_pkg.setup":  # the ament_python setup script, not a module
            continue
        out.append((name, f))
    return out


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_every_package_is_on_a_floor_and_each_floor_imports_only_floors_below() -> None:
    violations = []
    for name, path in _modules():
        unit = _unit(name)
        if unit is None:  # perception_pkg/__init__.py
            continue
        own = _floor(unit)
        for imported in _imports(path):
            other = _unit(imported)
            if other is None or other == unit:
                continue
            if _floor(other) > own:
                violations.append(f"{name} (floor {own}: {unit}) imports {imported} (floor {_floor(other)})")
    assert not violations, "imports that run up the floor plan:\n" + "\n".join(sorted(set(violations)))


def test_msgs_and_the_core_never_import_the_layers_above_them() -> None:
    """The two contracts the house issue names, checked on their own so a floor edit cannot hide them."""
    for name, path in _modules():
        unit = _unit(name)
        imported = {_unit(i) for i in _imports(path)} - {None, unit}
        if unit == "msgs":
            assert not imported & {"detection", "pose", "sim", "viz"}, (name, imported)
        # evaluation scores what the deployed pipelines produce, so it may drive them through replay
        if unit not in ("replay", "evaluation", "ros", "cli", "training"):
            assert not imported & {"replay", "ros", "cli"}, (name, imported)
        if unit not in NOT_CORE:
            assert not any(i.split(".")[0] in ROS_MODULES for i in _imports(path)), name


def test_importing_every_module_outside_ros_cli_and_training_loads_no_ros_package() -> None:
    """A fresh interpreter imports the whole core, then lists what got loaded: no rclpy, no generated
    ROS message package (``*_msgs`` or ``builtin_interfaces``), no rosidl runtime."""
    core = [n for n, _ in _modules() if _unit(n) is None or _unit(n) not in NOT_CORE]
    assert len(core) > 60, core
    code = (
        "import importlib, json, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    ros = [
        m
        for m in loaded
        if m.split(".")[0] in ROS_MODULES or m.split(".")[0].endswith("_msgs") or m.startswith("rosidl")
    ]
    assert not ros, f"the core loaded ROS packages: {ros[:20]}"
    assert "torch" not in loaded, "the runtime core must not need torch"
