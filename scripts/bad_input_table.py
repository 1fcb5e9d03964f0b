"""Print the README's troubleshooting table: each bad input of ``tests/bad_inputs.py`` run through ``monai-app train``
(in this process), with the one line it ends with. The same damages are asserted by ``tests/test_bad_input.py``.

    python scripts/bad_input_table.py > /tmp/table.md
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bad_inputs import DAMAGES, clean_datasets, damaged  # noqa: E402

from monai_app.cli import main  # noqa: E402


def error_line(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("monai-app: error: ")]
    return code, (lines[0][len("monai-app: error: "):] if lines else "(no error)")


def main_table() -> None:
    logging.disable(logging.CRITICAL)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clean = clean_datasets(tmp / "clean")
        print("| bad input | bundle | exit | message (paths shortened to the dataset folder) |")
        print("|---|---|---|---|")
        for i, name in enumerate(DAMAGES):
            bundle, root, _ = damaged(name, clean, tmp / str(i))
            code, line = error_line(["train", bundle, "--dataset-dir", str(root), "--output-dir", str(tmp / f"r{i}"),
                                     "--num_workers", "0"])
            line = line.replace(str(root.parent) + "/", "").replace("|", "\\|")
            print(f"| {name} | {bundle} | {code} | `{line}` |")


if __name__ == "__main__":
    main_table()
