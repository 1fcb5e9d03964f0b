"""Format the bundles' JSON files as the MONAI Model Zoo's pre-commit hooks do (maintenance script).

The zoo runs ``pretty-format-json --autofix --no-sort-keys --indent=4`` and ``end-of-file-fixer`` on every bundle;
this writes the same format (4-space indent, keys in their order, ASCII escapes, one final newline), so a bundle
passes those hooks. ``tests/test_bundle_configs.py`` checks it. Run from the repository root:

    python scripts/format_bundle_json.py            # rewrite bundles/*/configs/*.json in place
    python scripts/format_bundle_json.py --check    # list the files that would change; exit 1 if any
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def zoo_format(text: str) -> str:
    """``text`` (a JSON document) as the zoo's ``pretty-format-json --no-sort-keys --indent=4`` writes it."""
    return json.dumps(json.loads(text), indent=4, ensure_ascii=True, separators=(",", ": ")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the files that are not formatted")
    parser.add_argument("paths", nargs="*", type=Path, help="JSON files (default: bundles/*/configs/*.json)")
    args = parser.parse_args(argv)
    changed = []
    for path in args.paths or sorted((REPO / "bundles").glob("*/configs/*.json")):
        text = path.read_text()
        formatted = zoo_format(text)
        if formatted != text:
            changed.append(path)
            if not args.check:
                path.write_text(formatted)
    for path in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
