"""The package's layers: a module never imports from a layer above its own.

Layers (ntk_sketch/__init__.py): 0 = the helpers at the top (_validation, _base, _linalg, metrics, datasets), 1 = kernels/,
2 = sketches/, 3 = features/, 4 = learn/, 5 = the entry points (demo, __main__).  A module may import its own
layer and any layer below.  The graph is read from the source with ``ast`` (imports inside functions count too),
so an import added lazily to dodge a cycle is caught as well.
"""
import ast
import pathlib

import pytest

import ntk_sketch

PACKAGE = pathlib.Path(ntk_sketch.__file__).parent
LAYER = {"kernels": 1, "sketches": 2, "features": 3, "learn": 4}
TOP = {"_validation": 0, "_base": 0, "_linalg": 0, "metrics": 0, "datasets": 0, "demo": 5, "__main__": 5}


def _layer_of(dotted):
    """Layer of a module given as 'ntk_sketch.x.y'; None for the package itself or unknown names."""
    parts = dotted.split(".")
    if parts[0] != "ntk_sketch" or len(parts) < 2:
        return None
    if parts[1] in LAYER:
        return LAYER[parts[1]]
    return TOP.get(parts[1])


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) == 2:
            continue  # the top-level __init__ re-exports every layer by design
        yield path, parts


def _imports(path, parts):
    """Absolute dotted names of the ntk_sketch modules that ``path`` imports."""
    package = parts[:-1]  # the package a relative import starts from (also for an __init__)
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or target.count(".") == 0:
                for alias in node.names:  # `from . import datasets` names a module
                    yield f"{target}.{alias.name}"
            else:
                yield target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name


MODULES = list(_modules())


def test_every_module_has_a_layer():
    for path, parts in MODULES:
        assert _layer_of(".".join(parts)) is not None, f"{path} is in no layer; add it to LAYER or TOP"


@pytest.mark.parametrize("path, parts", MODULES, ids=[".".join(p) for _, p in MODULES])
def test_no_upward_imports(path, parts):
    own = _layer_of(".".join(parts))
    for target in _imports(path, parts):
        layer = _layer_of(target)
        if layer is None:
            continue
        assert layer <= own, f"{'.'.join(parts)} (layer {own}) imports {target} (layer {layer})"


def test_readme_names_import_from_the_top():
    for name in ["NTKSketch", "NTKRandomFeatures", "CNTKSketch", "RidgeClassifier", "RidgeRegressor",
                 "KernelRidgeClassifier", "NystromFeatures", "MLPClassifier", "ntk_kernel", "nngp_kernel",
                 "cntk_kernel", "PolySketch", "TensorSRHT", "SRHT", "CountSketch", "spectral_epsilon"]:
        assert hasattr(ntk_sketch, name), name


def test_the_checker_sees_a_violation(tmp_path):
    # the graph reader must notice an upward import, or the parametrised test above could never fail
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from ..learn.ridge import RidgeClassifier\n")
    targets = list(_imports(fake, ["ntk_sketch", "kernels", "fake"]))
    assert "ntk_sketch.learn.ridge" in targets
    assert _layer_of("ntk_sketch.learn.ridge") > _layer_of("ntk_sketch.kernels.fake")
