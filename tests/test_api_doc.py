"""Every ```python block of docs/api.md runs, in order, in one namespace (the page's examples are runnable)."""
import re
import warnings
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_code_block_of_the_api_page_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 10
    namespace: dict = {"__name__": "api_doc"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for number, block in enumerate(blocks, 1):
            try:
                exec(compile(block, f"{DOC.name} block {number}", "exec"), namespace)
            except Exception as err:  # name the block that failed
                raise AssertionError(f"docs/api.md code block {number} failed: {type(err).__name__}: {err}") from err
