"""weighted_captions' prompt syntax (workbench/dataset/prompt_weights.py), on sd-scripts' documented examples."""
from __future__ import annotations

import pytest

from workbench.dataset.prompt_weights import weighted_runs


@pytest.mark.parametrize("text, runs", [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    (r"\(literal\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.1 * 1.1 * 1.3), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.1 ** 4), (".", 1.1)]),
    ("time 12:30", [("time 12:30", 1.0)]),
    ("", [("", 1.0)]),
])
def test_weighted_runs(text, runs):
    got = weighted_runs(text)
    assert [t for t, _ in got] == [t for t, _ in runs]
    assert [w for _, w in got] == pytest.approx([w for _, w in runs])
