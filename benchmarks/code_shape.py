"""The repo's shape against its goals: file lengths, function lengths, import cycles, which modules load PyTorch.

    python benchmarks/code_shape.py              # report; exit 1 when a goal is missed
    python benchmarks/code_shape.py --root DIR   # another checkout (e.g. a git worktree of an older commit)

Goals: no Python file over 400 lines; no function over 80 lines (argparse builders, get_args_parser,
aside); no import cycle among the package's modules; no import that points up the package's layers
(LAYERS: leaves, face detection, data, networks and engines, pipeline, training, commands); every name
imported from the package's module that defines it (not one that imports it); the package, its timeline,
its onnx_classifier and onnx_export, prepare and analyze import without loading torch.
"""
import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 80
# The package's layers, lowest first: a module may import modules of its own layer and the layers below, never
# one above (a "data.*" entry covers the data package). A module in no layer is a goal missed: place it.
LAYERS = [
    ("leaves", ["utils", "emotions", "metrics", "tracking"]),
    ("face detection", ["face_detectors"]),
    ("data", ["data.*"]),
    ("networks and engines", ["face_trunk", "model", "inference", "onnx_classifier", "onnx_export"]),
    ("pipeline", ["recognizer", "timeline", "corpus", "live"]),
    ("training", ["engine", "distillation", "recipes", "config", "run_folder", "calibrate", "train"]),
    ("commands", ["visualize", "export_onnx", "analyze", "serve", "cli", "__main__"]),
]
TORCH_FREE = ("deep_emotion", "deep_emotion.timeline", "deep_emotion.onnx_classifier", "deep_emotion.onnx_export",
              "deep_emotion.data.prepare", "deep_emotion.analyze")
PACKAGE = "deep_emotion"
ARGPARSE_BUILDERS = ("get_args_parser",)


def python_files(root):
    """The repo's own Python files (not tests' fixtures, virtual environments or node_modules)."""
    skip = {".git", "node_modules", ".venv", "runs", "data", "__pycache__", "build", "dist"}
    return sorted(p for p in Path(root).rglob("*.py") if not skip & set(p.relative_to(root).parts))


def function_lengths(path):
    """[(qualified name, lines)] of every function in a file, nested ones included."""
    tree = ast.parse(Path(path).read_text())
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
    visit(tree, "")
    return found


def package_modules(root):
    """{dotted name below the package ("train", "data.prepare"; "" for the package, "data" for a subpackage): path}."""
    modules = {}
    for path in sorted((Path(root) / PACKAGE).rglob("*.py")):
        parts = path.relative_to(Path(root) / PACKAGE).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(node, modules):
    """[(module, name or None)] an ImportFrom of the package takes: (module, None) for a module imported whole."""
    if not isinstance(node, ast.ImportFrom) or not (node.module or "").split(".")[0] == PACKAGE:
        return []
    base = node.module[len(PACKAGE) + 1:]
    taken = []
    for alias in node.names:
        whole = f"{base}.{alias.name}" if base else alias.name
        taken.append((whole, None) if whole in modules else (base, alias.name))
    return taken


def package_imports(root):
    """{module: {package modules it imports, at any depth of its code}} of the package's modules (not packages)."""
    modules = package_modules(root)
    graph = {}
    for name, path in modules.items():
        if path.name == "__init__.py":
            continue
        imported = {module for node in ast.walk(ast.parse(path.read_text())) for module, _ in imports_of(node, modules)}
        graph[name] = {m for m in imported if m in modules and modules[m].name != "__init__.py"}
    return graph


def import_cycles(graph):
    """Every cycle of the import graph, each as [a, b, ..., a], found once from its first module."""
    cycles = []

    def walk(module, trail):
        for child in sorted(graph.get(module, ())):
            if child == trail[0]:
                cycles.append(trail + [child])
            elif child not in trail and child > trail[0]:  # each cycle is reported from its smallest module
                walk(child, trail + [child])
    for module in sorted(graph):
        walk(module, [module])
    return cycles


def layer_of(module):
    """The index in LAYERS of a package module ("data.loaders", "train"), None when no layer names it."""
    for index, (_, members) in enumerate(LAYERS):
        if module in members or any(m.endswith(".*") and module.startswith(m[:-1]) for m in members):
            return index
    return None


def layer_violations(graph):
    """["a (layer) imports b (a higher layer)"] of every import that points up LAYERS, and every module in no
    layer."""
    found = [f"{module} is in no layer of LAYERS" for module in sorted(graph) if layer_of(module) is None]
    for module, imported in sorted(graph.items()):
        for other in sorted(imported):
            low, high = layer_of(module), layer_of(other)
            if low is not None and high is not None and high > low:
                found.append(f"{module} ({LAYERS[low][0]}) imports {other} ({LAYERS[high][0]})")
    return found


def top_level_names(path):
    """The names a module defines at its top level (functions, classes, assignments)."""
    names = set()
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def imported_from_elsewhere(root):
    """["file:line: name from module"] of each `from deep_emotion.module import name` whose module does not
    define name (it only imports it): names are imported from where they are defined."""
    modules = package_modules(root)
    defined = {name: top_level_names(path) for name, path in modules.items()}
    found = []
    for path in python_files(root):
        for node in ast.walk(ast.parse(path.read_text())):
            found += [f"{path.relative_to(root)}:{node.lineno}: {name} from {module or PACKAGE}"
                      for module, name in imports_of(node, modules)
                      if name is not None and module and name not in defined.get(module, ())]
    return found


def loads_torch(root, module):
    """Whether importing module (from root) loads torch, per `python -X importtime`."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=root,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"import {module} failed: {result.stderr.strip().splitlines()[-1]}")
    return any(line.split("|")[-1].strip() == "torch" for line in result.stderr.splitlines())


def shape(root):
    """{"files": [(path, lines)], "functions": [(path, name, lines)], "torch": {module: bool}}, longest first."""
    files, functions = [], []
    for path in python_files(root):
        relative = str(path.relative_to(root))
        files.append((relative, len(path.read_text().splitlines())))
        functions += [(relative, name, n) for name, n in function_lengths(path)
                      if name.split(".")[-1] not in ARGPARSE_BUILDERS]
    return {"files": sorted(files, key=lambda f: -f[1]), "functions": sorted(functions, key=lambda f: -f[2]),
            "torch": {m: loads_torch(root, m) for m in TORCH_FREE},
            "cycles": import_cycles(package_imports(root)), "layers": layer_violations(package_imports(root)),
            "elsewhere": imported_from_elsewhere(root)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="checkout (default: this one)")
    parser.add_argument("--top", type=int, default=8, help="longest files and functions to list (default: 8)")
    parser.add_argument("--json", default="", help="also write the shape and the goals missed as JSON (default: none)")
    args = parser.parse_args()
    result = shape(args.root)
    print("longest files:")
    for path, n in result["files"][:args.top]:
        print(f"  {n:>5}  {path}")
    print("longest functions (argparse builders aside):")
    for path, name, n in result["functions"][:args.top]:
        print(f"  {n:>5}  {path}:{name}")
    for module, loaded in result["torch"].items():
        print(f"import {module}: {'loads torch' if loaded else 'no torch'}")
    print(f"import cycles: {len(result['cycles'])}" + "".join(f"\n  {' -> '.join(c)}" for c in result["cycles"]))
    print(f"imports that point up the layers: {len(result['layers'])}"
          + "".join(f"\n  {line}" for line in result["layers"]))
    print(f"names imported from a module that does not define them: {len(result['elsewhere'])}"
          + "".join(f"\n  {line}" for line in result["elsewhere"]))
    missed = ([f"{p} has {n} lines" for p, n in result["files"] if n > MAX_FILE_LINES]
              + [f"{p}:{name} has {n} lines" for p, name, n in result["functions"] if n > MAX_FUNCTION_LINES]
              + [f"{m} loads torch" for m, loaded in result["torch"].items() if loaded]
              + [f"import cycle {' -> '.join(c)}" for c in result["cycles"]]
              + result["layers"]
              + [f"{line}, not where it is defined" for line in result["elsewhere"]])
    print("goals met" if not missed else "goals missed: " + "; ".join(missed))
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "missed": missed}, indent=2))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
