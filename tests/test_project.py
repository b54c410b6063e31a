"""The project's own promises: dependency lists agree, links agree, notebooks are clean
and actually executed by `pytest`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
import executed  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> PyPI name


def _split(requirement: str) -> tuple[str, str]:
    """'torch>=2.2,<3 ; marker' -> ('torch', '>=2.2,<3')"""
    requirement = requirement.split(";")[0].strip()
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_matches_pyproject():
    project = PYPROJECT["project"]
    wanted = dict(_split(r) for r in project["dependencies"])
    for extra in ("notebooks", "dev"):
        wanted.update(_split(r) for r in project["optional-dependencies"][extra] if ";" not in r)
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and _split(dep)[0] not in ("python", "pip"):
            name, spec = _split(dep)
            conda[CONDA_NAMES.get(name, name)] = spec
    assert conda == wanted, "environment.yml and pyproject.toml list different packages or ranges"
    assert {"pip": ["-e .[benchmarks]"]} in env["dependencies"]


def test_ranges_admit_the_torch_we_test_with():
    from importlib.metadata import version

    from packaging.specifiers import SpecifierSet

    deps = dict(_split(r) for r in PYPROJECT["project"]["dependencies"])
    for name in ("torch", "torchvision"):
        installed = version(name).split("+")[0]
        assert installed in SpecifierSet(deps[name]), f"{name} {installed} outside {deps[name]}"
        assert "==" not in deps[name], "ranges, not pins"


def test_notebooks_exist_and_are_numbered():
    names = [nb.name for nb in NOTEBOOKS]
    assert "00_setup.ipynb" in names
    assert all(re.match(r"\d\d_[a-z0-9_]+\.ipynb$", n) for n in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_links_agree_with_the_home_url(path):
    home = PYPROJECT["project"]["urls"]["Homepage"].rstrip("/")
    owner_repo = home.split("github.com/", 1)[1]
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    badge = f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}"
    assert badge in "".join(nb["cells"][0]["source"]), f"first cell lacks the Colab badge {badge}"
    assert f"git+{home}" in text, "the setup cell must install cnnlab from the home URL"
    hint = "run `python .ci/sync_home_url.py` after changing [project.urls] in pyproject.toml"
    for found in re.findall(r"github\.com/([\w.-]+/[\w.-]+)", text):
        assert found == owner_repo, f"{path.name} links to {found}, not {owner_repo}: {hint}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; run `nbstripout {path}`"


def _own_pytest_env() -> dict[str, str]:
    """The environment for a pytest run of its own, started from a test: without the
    variables that make the root conftest.py set up an xdist worker (importing torch,
    4.8 s of a 5.9 s collection on a 2-core AMD VM, 2026-12-02)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}


def test_pytest_collects_every_notebook():
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-n", "0", "notebooks"],
        cwd=ROOT, capture_output=True, text=True, check=False, env=_own_pytest_env(),
    )  # fmt: skip
    collected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    assert collected == {f"notebooks/{nb.name}" for nb in NOTEBOOKS}, out.stdout[-2000:]


def run_nbval(folder, cells, with_conftest=False):
    """Write ``cells`` as a notebook in ``folder`` and run pytest with nbval on it there
    (with the project's root conftest.py when asked)."""
    import nbformat
    from nbformat.v4 import new_notebook

    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, folder / "lesson.ipynb")
    if with_conftest:  # with the module it stores executed notebooks with, for the website
        (folder / "conftest.py").write_text((ROOT / "conftest.py").read_text(encoding="utf-8"))
        (folder / "docs").mkdir()
        shutil.copy(ROOT / "docs" / "executed.py", folder / "docs" / "executed.py")
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-q", "lesson.ipynb"],
        cwd=folder, capture_output=True, text=True, check=False, env=_own_pytest_env(),
    )  # fmt: skip


def test_a_raising_notebook_cell_fails_the_run(tmp_path):
    from nbformat.v4 import new_code_cell

    out = run_nbval(tmp_path, [new_code_cell("x = 1"), new_code_cell("raise RuntimeError('boom')")])
    assert out.returncode == 1, out.stdout[-2000:]
    assert "1 failed, 1 passed" in out.stdout and "boom" in out.stdout


def test_a_broken_cell_must_raise_what_it_announces(tmp_path):
    """nbval alone passes a `raises-exception` cell that raises nothing; our conftest does not."""
    from nbformat.v4 import new_code_cell

    def broken(text):
        return new_code_cell(text, metadata={"tags": ["raises-exception"]})

    out = run_nbval(tmp_path, [
        broken("# raises: ZeroDivisionError\n1 / 0"),
        broken("# raises: ZeroDivisionError\n1 / 1"),
        broken("# raises: KeyError\n[][0]"),
        broken("{}['missing']"),
    ], with_conftest=True)  # fmt: skip
    assert "3 failed, 1 passed" in out.stdout, out.stdout[-3000:]
    assert "announces ZeroDivisionError but raised nothing" in out.stdout
    assert "announces KeyError but raised ['IndexError']" in out.stdout
    assert "must start with '# raises: ExceptionName'" in out.stdout


def test_pytest_stores_the_notebooks_it_passes_for_the_website(tmp_path):
    """What nbval received becomes the notebook's outputs in the website's smoke cache, so
    `python docs/build.py smoke --require-cache` after `pytest` executes nothing again."""
    from nbformat.v4 import new_code_cell, new_markdown_cell

    bar = "import sys\nfor s in ('0%\\r', 'bar 1\\n', 'batch\\x1b[A\\r', 'bar 2\\n'): sys.stderr.write(s)"
    cells = [new_markdown_cell("# Lesson"), new_code_cell("print('hello')"), new_code_cell("6 * 7"),
             new_code_cell("6 * 7;"), new_code_cell(bar)]  # fmt: skip
    out = run_nbval(tmp_path, cells, with_conftest=True)
    assert "4 passed" in out.stdout, out.stdout[-2000:]
    (stored,) = (tmp_path / "_build" / "site-cache" / "smoke").glob("lesson.*.ipynb")
    nb = json.loads(stored.read_text(encoding="utf-8"))
    first, second, quiet, bars = (c for c in nb["cells"] if c["cell_type"] == "code")
    # stored as the kernel wrote it (nbval would drop what precedes each carriage return);
    # the page shows the terminal's end state
    raw = "".join(executed.text_of(o["text"]) for o in bars["outputs"])
    assert raw == "0%\rbar 1\nbatch\x1b[A\rbar 2\n"
    assert executed.clean(nb)["cells"][-1]["outputs"][0]["text"] == "bar 2\nbatch"
    assert quiet["outputs"] == [], "a trailing ';' hides the result, as in Jupyter"
    assert first["outputs"] == [{"output_type": "stream", "name": "stdout", "text": "hello\n"}]
    assert second["outputs"][0]["data"]["text/plain"] == "42"
    assert second["execution_count"] == second["outputs"][0]["execution_count"] == 2
    assert nb["metadata"]["cnnlab_site"]["mode"] == "smoke"

    failing = tmp_path / "failing"
    failing.mkdir()
    out = run_nbval(failing, [new_code_cell("x = 1"), new_code_cell("1 / 0")], with_conftest=True)
    assert "1 failed" in out.stdout
    assert not (failing / "_build").exists(), "a notebook that failed must not be cached"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in (
        'pip install -e ".[notebooks]"',
        "jupyter lab notebooks/",
        'pip install -e ".[dev,benchmarks]"',
        "pytest",
    ):
        assert command in readme
    assert 'pip install -e ".[site]"' in readme
    # quiet, and without byte-compiling everything at install time: the same packages
    assert re.search(r'^pip install( -q)?( --no-compile)? -e "\.\[dev,site,benchmarks\]"$', ci,
                     re.M), "CI must install as the README says (the test, website and benchmarks extras)"  # fmt: skip
    assert re.search(r"^\s*(python -m )?pytest\b", ci, re.M), (
        "CI must run the README's test command"
    )
    # ... and the website's: the smoke build (from the notebooks pytest ran) and the browser test
    section = readme.split("## The course as a website", 1)[1].split("\n## ", 1)[0]
    smoke = next(line for line in section.splitlines() if "smoke" in line)
    assert smoke.split("#")[0].strip() == "python docs/build.py smoke", smoke
    assert "writes _site/" in smoke
    assert re.search(r"^python docs/build.py smoke --require-cache\b", ci, re.M)
    assert re.search(r"^python docs/check_site.py _site$", ci, re.M)


def test_the_published_site_is_where_github_pages_puts_this_repository():
    urls = PYPROJECT["project"]["urls"]
    owner, repo = urls["Homepage"].rstrip("/").split("github.com/", 1)[1].split("/")
    assert urls["Documentation"] == f"https://{owner}.github.io/{repo}/"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<{urls['Documentation']}>" in readme
    workflow = (ROOT / ".github" / "workflows" / "site.yml").read_text(encoding="utf-8")
    assert "actions/deploy-pages" in workflow and "python docs/build.py full" in workflow


ARTEFACTS = ("data", "models", "runs", "checkpoints")


def test_no_project_source_is_git_ignored():
    """A clone must contain every module and test: an ignore rule such as `data/` once
    swallowed `cnnlab/data/` and CI failed with 'No module named cnnlab.data'."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (e.g. an sdist): nothing can be ignored")
    sources = [
        str(p.relative_to(ROOT))
        for folder in ("cnnlab", "tests", "benchmarks", "notebooks", ".ci")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in {".py", ".ipynb", ".md", ""} and "__pycache__" not in p.parts
        and ".ipynb_checkpoints" not in p.parts
        # what running the notebooks leaves next to them (data sets, saved models, logs)
        and p.relative_to(ROOT).parts[:2] not in {("notebooks", d) for d in ARTEFACTS}
    ]  # fmt: skip
    out = subprocess.run(
        ["git", "check-ignore", "--no-index", *sources], cwd=ROOT, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert out.stdout.strip() == "", f"these project files are git-ignored:\n{out.stdout}"
