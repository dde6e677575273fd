"""The layout rules of docs/design.md, checked on the source: no import cycles, Keras internals in
``compat`` only, thin experiment binaries."""

import ast
import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_lottery"
EXPERIMENTS = PACKAGE / "experiments"  # the binaries, installed with the package
SHIMS = ROOT / "experiments"  # python -m experiments.<name> from a clone


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(module, path, known):
    """keras_lottery modules imported anywhere in ``path`` (function bodies included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "keras_lottery":
                continue
            while name not in known:  # ``import keras_lottery.a.b.attr`` style: the longest module prefix
                name = name.rpartition(".")[0]
            parts = name.split(".")
            # Importing a.b.c runs the __init__ of every package on the way that is not one of ours.
            for i in range(2, len(parts) + 1):
                target = ".".join(parts[:i])
                if not module.startswith(target + ".") and target != module:
                    found.add(target)
    return found


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_no_import_cycle_among_package_modules():
    modules = _modules()
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    # The package root imports every subpackage to re-export it; modules inside never import the root.
    graph["keras_lottery"] = {m for m in graph["keras_lottery"]}
    inner = {m: {t for t in deps if t != "keras_lottery"} for m, deps in graph.items()}
    assert _cycles(inner) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Spellings of Keras details that are not public API. Each lives in keras_lottery/compat.py only.
KERAS_INTERNALS = [r"[.\"']_learning_rate\b", r"__keras_tensor__", r"[\"']Functional[\"']", r"\bkeras\.src\b",
                   r"save_own_variables", r"keras_history", r"add_variable_from_reference"]


@pytest.mark.parametrize("pattern", KERAS_INTERNALS)
def test_keras_internals_are_referenced_from_compat_only(pattern):  # docstrings may name them
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "compat.py":
            continue
        if re.search(pattern, _code(path)):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def _code(path):
    """The source of ``path`` without blank lines, comment lines and docstrings."""
    tree = ast.parse(path.read_text())
    doc_lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant) \
                    and isinstance(first.value.value, str):
                doc_lines.update(range(first.lineno, first.end_lineno + 1))
    return "\n".join(line for number, line in enumerate(path.read_text().splitlines(), 1)
                     if line.strip() and not line.strip().startswith("#") and number not in doc_lines)


def _code_lines(path):
    """Lines of code: not blank, not comments, not docstrings."""
    return len(_code(path).splitlines())


BINARIES = sorted(p for p in EXPERIMENTS.glob("*.py") if p.name != "__init__.py")
SHIM_FILES = sorted(p for p in SHIMS.glob("*.py") if p.name != "__init__.py")


@pytest.mark.parametrize("path", BINARIES, ids=lambda p: p.name)
def test_experiment_binaries_are_thin(path):
    source = path.read_text()
    assert _code_lines(path) <= 150
    assert "@dataclasses.dataclass" not in source and "@dataclass" not in source
    code = _code(path)
    # No training loop and no run-directory path arithmetic: the library's run() functions own both.
    assert not re.search(r"\.fit\(|RewindCheckpoint|RewindPoint|os\.path\.join|\.file\(", code)


def test_every_binary_is_listed_by_the_command_and_has_a_clone_shim():
    names = {p.stem for p in BINARIES} - {"common"}
    listed = re.search(r"EXPERIMENTS = \(([^)]*)\)", (EXPERIMENTS / "__init__.py").read_text()).group(1)
    assert sorted(re.findall(r'"(\w+)"', listed)) == sorted(names)
    assert sorted(p.stem for p in SHIM_FILES) == sorted(names)


@pytest.mark.parametrize("path", SHIM_FILES, ids=lambda p: p.name)
def test_clone_shims_only_hand_over(path):
    code = _code(path)
    assert _code_lines(path) <= 5, code
    assert f"from keras_lottery.experiments import {path.stem}, launch" in code or \
        f"from keras_lottery.experiments import launch, {path.stem}" in code
    assert f'launch("{path.stem}")' in code


def test_only_the_library_is_packaged():
    """No top-level ``experiments`` (or ``tests``) package lands in site-packages: discovery takes keras_lottery only."""
    text = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"\[tool\.setuptools\.packages\.find\]\s*(?:#[^\n]*\n)*include = \[([^\]]*)\]", text).group(1)
    assert sorted(re.findall(r'"([^"]+)"', include)) == ["keras_lottery", "keras_lottery.*"]
    assert re.search(r'^keras-lottery = "keras_lottery\.experiments:main"$', text, re.M)


def test_code_line_counter_skips_docstrings_and_comments(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('"""doc\n\nmore"""\n\n# comment\nimport os\n\n\ndef f():\n    """one line"""\n    return os\n')
    assert _code_lines(path) == 3


# Third-party packages imported inside functions on purpose (docs/design.md says why for each).
LAZY_ALLOWED = {"tensorflow_model_optimization", "tf_keras", "tensorflow_datasets", "codecarbon", "matplotlib", "jax",
                "keras_hub"}  # optional: keras-hub is a test extra (KerasHub models are the users' own)


def test_function_level_imports_are_only_the_documented_lazy_ones():
    lazy = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        lazy |= {(alias.name.split(".")[0], path.name) for alias in inner.names}
                    elif isinstance(inner, ast.ImportFrom):
                        lazy.add(((inner.module or "").split(".")[0], path.name))
    assert sorted(item for item in lazy if item[0] not in LAZY_ALLOWED) == []


# Former names removed (docs/design.md, "One name for each thing"): none may come back.
FORMER_MODULES = ["wrappers.py", "blocks/graph.py", "blocks/lottery.py"]
FORMER_ATTRIBUTES = {"keras_lottery.runs": ["define_flags", "from_flags", "write_json_atomic", "read_json"],
                     "keras_lottery.masks": ["apply_mask", "sparsity"], "keras_lottery": ["wrappers"]}


def test_no_former_names_are_kept():
    import importlib
    import inspect

    assert [name for name in FORMER_MODULES if (PACKAGE / name).exists()] == []
    kept = [f"{module}.{name}" for module, names in FORMER_ATTRIBUTES.items()
            for name in names if hasattr(importlib.import_module(module), name)]
    assert kept == []
    import keras_lottery as kl
    assert not callable(kl.sparsity)  # the density report is kl.sparsity_report
    assert "emissions" not in inspect.signature(kl.lottery.imp.run).parameters  # one name: emissions_factory
    deprecated = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if "DeprecationWarning" in _code(p)]
    assert deprecated == []
