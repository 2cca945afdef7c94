"""The wheel carries every module, the shipped weights, the icons and the sample view, and an
installed package finds them without the source tree."""

import configparser
import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOTS = ("annotator", "refinement_model", "simulation")
RESOURCES_PACKAGE = "refinement_model/resources"


def _source_packages() -> set[str]:
    return {
        ".".join(init.parent.relative_to(ROOT).parts)
        for name in PACKAGE_ROOTS
        for init in (ROOT / name).rglob("__init__.py")
    }


def _resource_files() -> list[str]:
    return sorted(
        path.relative_to(ROOT / "resources").as_posix()
        for path in (ROOT / "resources").rglob("*")
        if path.is_file()
        and not any(part.startswith((".", "__")) for part in path.relative_to(ROOT).parts)
    )


def test_pyproject_lists_every_package_of_the_source_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert listed - {"refinement_model.resources"} == _source_packages(), (
        "[tool.setuptools] packages in pyproject.toml must name every package"
    )
    assert config["package-dir"] == {"refinement_model.resources": "resources"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy, so that no stale build/ folder of the checkout gets into it.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")
    for name in (*PACKAGE_ROOTS, "resources"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (found,) = out.glob("etmira_refine-*.whl")
    return found


@pytest.mark.slow
def test_wheel_holds_modules_weights_icons_and_sample_view(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    resources = {
        name[len(RESOURCES_PACKAGE) + 1 :]
        for name in names
        if name.startswith(RESOURCES_PACKAGE + "/")
    }
    assert sorted(resources) == _resource_files()
    assert {
        "weights/base.safetensors",
        "weights/refiner.safetensors",
        "icons/app.svg",
        "sample/SYN-0001/PS/SYN-0001_R_U.tif",
        "sample/drawings/SYN-0001_R_drawings.png",
    } <= resources
    modules = {
        path.relative_to(ROOT).as_posix()
        for name in PACKAGE_ROOTS
        for path in (ROOT / name).rglob("*.py")
    }
    assert modules <= names
    (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(zipfile.ZipFile(wheel).read(entry_points).decode())
    assert parser["console_scripts"]["etmira"] == "annotator.cli:main"


@pytest.mark.slow
def test_installed_package_finds_its_resources_outside_the_source_tree(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import json, refinement_model.shipped as s; print(json.dumps([str(s.RESOURCES), "
        "str(s.shipped_checkpoint('base')), str(s.shipped_checkpoint('refiner')), "
        "str(s.sample_view())]))"
    )
    # -I: no user site, no PYTHONPATH, no current folder; the unpacked wheel is all it sees
    done = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {script}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    resources, base, refiner, sample = (Path(p) for p in json.loads(done.stdout))
    assert resources == site / "refinement_model" / "resources"
    assert base.is_file() and refiner.is_file() and (sample / "SYN-0001" / "PS").is_dir()
