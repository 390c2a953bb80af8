"""Print a parameter file as `-S key=value` arguments for `dvc exp run`.

dvc exp run $(python scripts/params_overrides.py params/fer2013-gpu.yaml)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def flatten(node: Any, prefix: str = "") -> list[str]:
    """Leaves as `a.b=value`; lists stay whole values (DVC sets a list in one go)."""
    if isinstance(node, dict) and node:
        return [arg for key, value in node.items() for arg in flatten(value, f"{prefix}{key}.")]
    return [f"{prefix[:-1]}={json.dumps(node, separators=(',', ':'))}"]


def main() -> None:
    params = yaml.safe_load(Path(sys.argv[1]).read_text())
    print(" ".join(f"-S {arg}" for arg in flatten(params)))


if __name__ == "__main__":
    main()
