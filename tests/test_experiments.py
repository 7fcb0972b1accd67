"""The research modules stay runnable and stay out of the product: each imports, has a
`main`, and uses no private hifi_core name; hifi_core and the nodes never import them."""

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem != "__init__")
SHARED = {"validation_options"}  # options the validation-set experiments share, no main


def test_there_are_experiments():
    assert len(MODULES) >= 10


@pytest.mark.parametrize("name", MODULES)
def test_experiment_imports_and_runs_as_a_module(name):
    module = importlib.import_module(f"experiments.{name}")
    assert name in SHARED or callable(getattr(module, "main", None)), name
    assert module.__doc__ and ("-m experiments." + name in module.__doc__ or name in SHARED), \
        f"{name}: its docstring should show `python -m experiments.{name}`"


@pytest.mark.parametrize("name", MODULES)
def test_experiment_uses_no_private_hifi_core_name(name):
    tree = ast.parse((ROOT / "experiments" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hifi_core"):
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{name} imports {private} from {node.module}"


def test_the_product_never_imports_the_experiments():
    for path in [*(ROOT / "hifi_core").rglob("*.py"), *(ROOT / "nodes").rglob("*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "experiments" for n in names), path
