"""fm/ ships in the Lambda asset and in the prep image: the standard library, numpy and the contract only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FM = Path(__file__).resolve().parents[2] / "fm"


def test_fm_imports_only_the_standard_library_numpy_and_the_contract() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "contract", "fm"}
    sources = sorted(FM.glob("*.py"))
    assert {"factors.py", "topn.py", "ranking.py"} <= {p.name for p in sources}
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"fm/{source.name} imports {name}"
