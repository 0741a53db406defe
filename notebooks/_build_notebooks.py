"""Regenerate the notebooks from their cell sources (python notebooks/_build_notebooks.py).

Each notebook ``NN_name.ipynb`` is built from ``notebooks/src/NN_name.py``, a module that defines ``CELLS``, a list
of ("md" | "code", source) pairs. Keeping the source as plain Python makes the notebooks reviewable; git holds
them with outputs stripped, and tests/test_notebooks.py executes every generated .ipynb file.
"""

import importlib.util
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent


def build(cells, path: Path) -> None:
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only the cells whose source changed
        cell["id"] = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, path)


def cells_of(source: Path) -> list:
    spec = importlib.util.spec_from_file_location(source.stem, source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CELLS


if __name__ == "__main__":
    import sys

    wanted = set(sys.argv[1:])
    for src in sorted((HERE / "src").glob("[0-9]*.py")):
        if not wanted or src.stem in wanted:
            build(cells_of(src), HERE / f"{src.stem}.ipynb")
            print("built", src.stem)
