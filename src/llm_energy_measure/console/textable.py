"""Plain-text tables: fast enough for tens of thousands of rows, no terminal library.

Every cell is printed through ``escape_controls``: a name read from a stored file that holds
an escape sequence (``\\x1b[2J``) or a bidirectional-text control shows as its escape and
cannot drive the terminal.
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_energy_measure.security import escape_controls


def cell(value: object) -> str:
    """One value as printable text: None is empty, control characters are escaped."""
    return "" if value is None else escape_controls(str(value))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned text columns separated by two spaces, with a dashed rule under headers."""
    cells = [[cell(h) for h in headers]] + [[cell(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_pairs(pairs: Sequence[tuple[str, object]]) -> str:
    """Two columns: label and value."""
    width = max((len(cell(k)) for k, _ in pairs), default=0)
    return "\n".join(f"{cell(k).ljust(width)}  {cell(v)}" for k, v in pairs)


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """A number with an SI prefix, e.g. si(1.5e12, 'FLOP') -> '1.50 TFLOP'."""
    if value is None:
        return "n/a"
    prefixes = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
    for factor, prefix in prefixes:
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"
