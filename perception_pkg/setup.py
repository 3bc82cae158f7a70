"""ament_python build of perception_pkg for colcon on a robot with system ROS 2.

This folder is both the Python package and the ROS package: setuptools maps the package onto '.'.
The repository's config/, launch/ and models/ are installed under share/perception_pkg, where
perception_pkg.paths finds them through AMENT_PREFIX_PATH. (In the pip virtual environment the
repository's pyproject.toml is used instead and this file is not involved.)
"""

from glob import glob
from pathlib import Path

from setuptools import setup

here = Path(__file__).resolve().parent
repo = here.parent
package = "perception_pkg"
subpackages = sorted(
    f"{package}.{p.parent.relative_to(here).as_posix().replace('/', '.')}"
    for p in here.rglob("__init__.py")
    if p.parent != here and "resource" not in p.parts
)


def share(folder: str, pattern: str = "**/*") -> list[tuple[str, list[str]]]:
    """data_files entries copying repo/<folder> into share/perception_pkg/<folder>, keeping subfolders."""
    files = [Path(f) for f in glob(str(repo / folder / pattern), recursive=True) if Path(f).is_file()]
    by_dir: dict[str, list[str]] = {}
    for f in files:
        rel = f.parent.relative_to(repo).as_posix()
        by_dir.setdefault(f"share/{package}/{rel}", []).append(str(f))
    return sorted(by_dir.items())


setup(
    name=package,
    version="0.1.0",
    packages=[package, *subpackages],
    package_dir={package: "."},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package}"]),
        (f"share/{package}", ["package.xml"]),
        *share("config"),
        *share("launch"),
        *share("models"),
        *share("rviz"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="perception_pkg developers",
    maintainer_email="perception@example.com",
    description="ROS 2 perception nodes with TensorRT / ONNX Runtime engines",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "perception = perception_pkg.cli.main:main",
            "cloud_filter = perception_pkg.ros.nodes.cloud_filter:main",
            "detection = perception_pkg.ros.nodes.detection:main",
            "pose = perception_pkg.ros.nodes.pose:main",
            "completion = perception_pkg.ros.nodes.completion:main",
            "weather = perception_pkg.ros.nodes.weather:main",
        ],
    },
)
