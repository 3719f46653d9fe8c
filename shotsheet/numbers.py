"""Numbers typed as text, the way people in different countries type them.

German-speaking labs write `3,7` for 3.7; read as English it is 37 or 3,7 → 37.0, a silent factor
of ten. A value is read with an explicit decimal mark ("comma" or "point"), or with "auto": one
comma or one point is the decimal mark, and what could be either (`1,234`, `1,234.5`, `1.234,5`)
is refused with a message instead of guessed.
"""

import re

DECIMAL_MARKS = {"auto": "either, refuse what is ambiguous", "comma": "decimal comma (1.234,5)",
                 "point": "decimal point (1,234.5)"}
EXPONENT = r"(?:[eE][+-]?\d+)?"
SPACES = str.maketrans("", "", " \u00a0\u202f\u2009'")  # thousands separators no one reads otherwise


def parse_number(text: str, decimal_mark: str = "auto") -> float:
    """The number a person meant by `text`; ValueError names the problem (kept short: reports group by it)."""
    value = text.strip().replace("\u2212", "-").translate(SPACES)
    if not value:
        raise ValueError("empty")
    if decimal_mark == "auto":
        return parse_auto(value)
    decimal, thousands = (",", ".") if decimal_mark == "comma" else (".", ",")
    pattern = rf"[+-]?(?:\d{{1,3}}(?:\{thousands}\d{{3}})+|\d*)(?:\{decimal}\d*)?{EXPONENT}"
    if not re.fullmatch(pattern, value) or not re.search(r"\d", value):
        if decimal_mark == "point" and re.fullmatch(rf"[+-]?\d*,\d+{EXPONENT}", value):
            raise ValueError("decimal comma, but this import reads decimal points")
        if decimal_mark == "comma" and re.fullmatch(rf"[+-]?\d*\.\d+{EXPONENT}", value):
            raise ValueError("decimal point, but this import reads decimal commas")
        raise ValueError("not a number")
    return float(value.replace(thousands, "").replace(decimal, "."))


def parse_auto(value: str) -> float:
    if "," in value and "." in value:
        raise ValueError("ambiguous number: both a comma and a point (choose the decimal mark)")
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+", value):
        raise ValueError("ambiguous number: a thousands or a decimal comma? (choose the decimal mark)")
    if not re.fullmatch(rf"[+-]?(?:\d+[.,]?\d*|[.,]\d+){EXPONENT}", value):
        raise ValueError("not a number")
    return float(value.replace(",", "."))
