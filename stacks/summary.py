"""What `cdk deploy` would create, read from the synthesized templates: `python -m stacks.summary cdk.out`."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def summarize(assembly: Path) -> str:
    templates = sorted(assembly.glob("*.template.json"))
    if not templates:
        raise SystemExit(f"loftrec: no templates in {assembly}: run `make synth` first")
    lines: list[str] = []
    for path in templates:
        resources = json.loads(path.read_text()).get("Resources", {})
        counts = Counter(resource["Type"] for resource in resources.values())
        lines.append(f"Stack {path.name.removesuffix('.template.json')}: {len(resources)} resources ({path})")
        lines.extend(f"  {count:3d}  {kind}" for kind, count in sorted(counts.items()))
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    print(summarize(Path(argv[1] if len(argv) > 1 else "cdk.out")))


if __name__ == "__main__":
    main(sys.argv)
