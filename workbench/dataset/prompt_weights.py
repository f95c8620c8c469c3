"""Weighted captions (weighted_captions), the A1111 prompt-emphasis syntax sd-scripts reads:
(text) × 1.1, ((text)) × 1.21, (text:1.5) × 1.5, [text] ÷ 1.1; \\( \\) \\[ \\] \\\\ are the characters
themselves; a bracket never closed still counts up to the end. Pure: text in, (text, weight) runs out."""
from __future__ import annotations

import re

ROUND, SQUARE = 1.1, 1 / 1.1
# one token of the syntax: an escape, an opening bracket, ":<number>)", a closing bracket, or plain text
TOKEN = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:([+-]?[.\d]+)\)|\)|]|[^\\()\[\]:]+|:")


def weighted_runs(text: str) -> list[tuple[str, float]]:
    """[(text, weight)] with neighbouring runs of the same weight joined; [("", 1.0)] for nothing."""
    runs: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []

    def scale(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in TOKEN.finditer(text):
        piece, number = match.group(0), match.group(1)
        if piece.startswith("\\") and len(piece) == 2:
            runs.append([piece[1], 1.0])
        elif piece == "(":
            open_round.append(len(runs))
        elif piece == "[":
            open_square.append(len(runs))
        elif number is not None and open_round:
            scale(open_round.pop(), float(number))
        elif piece == ")" and open_round:
            scale(open_round.pop(), ROUND)
        elif piece == "]" and open_square:
            scale(open_square.pop(), SQUARE)
        else:
            runs.append([piece, 1.0])
    for start in open_round:
        scale(start, ROUND)
    for start in open_square:
        scale(start, SQUARE)
    return _joined(runs) or [("", 1.0)]


def _joined(runs: list[list]) -> list[tuple[str, float]]:
    out: list[list] = []
    for text, weight in runs:
        if out and out[-1][1] == weight:
            out[-1][0] += text
        else:
            out.append([text, weight])
    return [(t, w) for t, w in out]
