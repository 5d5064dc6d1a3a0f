"""Workflow module discovery (API.md §1.10)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyworkflow.discovery import DiscoveryError, discover_workflows


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project directory as cwd, with sys.path and sys.modules restored afterwards."""
    monkeypatch.delenv("PYWORKFLOW_DISCOVER", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules_before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - modules_before:
        if name.startswith("disc_"):
            del sys.modules[name]


def _module(directory: Path, name: str, body: str = "LOADED = True\n") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(body, encoding="utf-8")


def test_module_path_is_imported_from_cwd(project: Path) -> None:
    _module(project, "disc_arg")
    discover_workflows(module_path="disc_arg")
    assert "disc_arg" in sys.modules
    assert str(project) in sys.path


def test_imported_module_registers_its_workflows(project: Path) -> None:
    from pyworkflow.core.registry import _registry, get_workflow

    _module(
        project,
        "disc_registers",
        "from pyworkflow.core.registry import register_workflow\n"
        "async def disc_flow():\n    return 1\n"
        "register_workflow('disc_flow', disc_flow, disc_flow)\n",
    )
    try:
        discover_workflows("disc_registers")
        assert get_workflow("disc_flow") is not None
    finally:
        _registry._workflows.pop("disc_flow", None)


def test_module_path_wins_over_env(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(project, "disc_first")
    monkeypatch.setenv("PYWORKFLOW_DISCOVER", "disc_never")
    discover_workflows(module_path="disc_first")
    assert "disc_first" in sys.modules and "disc_never" not in sys.modules


def test_env_var_is_comma_separated(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module(project, "disc_env_a")
    _module(project, "disc_env_b")
    monkeypatch.setenv("PYWORKFLOW_DISCOVER", "disc_env_a, disc_env_b,")
    discover_workflows(config={"module": "disc_never"})
    assert {"disc_env_a", "disc_env_b"} <= set(sys.modules)
    assert "disc_never" not in sys.modules


def test_config_module_and_modules(project: Path) -> None:
    for name in ("disc_cfg_one", "disc_cfg_two", "disc_cfg_three"):
        _module(project, name)
    (project / "pyworkflow.config.yaml").write_text("module: disc_never\n")
    discover_workflows(config={"module": "disc_cfg_one", "modules": ["disc_cfg_two"]})
    assert {"disc_cfg_one", "disc_cfg_two"} <= set(sys.modules)
    assert "disc_never" not in sys.modules


def test_config_without_modules_falls_back_to_cwd_yaml(project: Path) -> None:
    _module(project, "disc_yaml")
    (project / "pyworkflow.config.yaml").write_text("modules:\n  - disc_yaml\n")
    discover_workflows(config={"runtime": "local"})
    assert "disc_yaml" in sys.modules


def test_yaml_in_cwd(project: Path) -> None:
    _module(project / "pkg", "__init__", "")
    _module(project / "pkg", "disc_flows")
    (project / "pyworkflow.config.yaml").write_text("module: pkg.disc_flows\n")
    try:
        discover_workflows()
        assert "pkg.disc_flows" in sys.modules
    finally:
        sys.modules.pop("pkg.disc_flows", None)
        sys.modules.pop("pkg", None)


def test_no_source_does_nothing(project: Path) -> None:
    before = set(sys.modules)
    discover_workflows()
    assert {m for m in set(sys.modules) - before if m.startswith("disc_")} == set()


def test_project_root_and_config_dir_go_on_sys_path(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text("[project]\nname='x'\n")
    _module(project, "disc_at_root")
    nested = project / "src" / "deep"
    nested.mkdir(parents=True)
    conf_dir = project / "conf"
    _module(conf_dir, "disc_beside_conf")
    monkeypatch.chdir(nested)
    discover_workflows(
        config={"modules": ["disc_at_root", "disc_beside_conf"]},
        config_path=conf_dir / "pyworkflow.config.yaml",
    )
    assert str(project) in sys.path and str(conf_dir) in sys.path
    assert {"disc_at_root", "disc_beside_conf"} <= set(sys.modules)


def test_missing_module_raises_discovery_error(project: Path) -> None:
    with pytest.raises(DiscoveryError) as err:
        discover_workflows("disc_does_not_exist")
    message = str(err.value)
    assert "disc_does_not_exist" in message and "ModuleNotFoundError" in message
    assert "PYTHONPATH" in message
    assert err.value.module == "disc_does_not_exist"
    assert isinstance(err.value.__cause__, ModuleNotFoundError)


def test_error_inside_module_is_reported(project: Path) -> None:
    _module(project, "disc_broken", "raise RuntimeError('boom at import')\n")
    with pytest.raises(DiscoveryError, match=r"disc_broken.*RuntimeError: boom at import"):
        discover_workflows("disc_broken")


def test_file_path_gets_a_hint(project: Path) -> None:
    with pytest.raises(DiscoveryError, match="dotted module name"):
        discover_workflows("myapp/workflows.py")


def test_bad_modules_value(project: Path) -> None:
    with pytest.raises(DiscoveryError, match="'modules' in the config must be a list"):
        discover_workflows(config={"modules": "a.b"})
    with pytest.raises(DiscoveryError, match="'module' in the config must be"):
        discover_workflows(config={"module": ["a"]})
