"""Numbers typed as text, the way people in different countries type them.

German-speaking labs write `3,7` for 3.7; read as English it is 37 or 3,7 → 37.0, a silent factor
of ten. A value is read with an explicit decimal mark ("comma" or "point"), or with "auto": one
comma or one point is the decimal mark, and what could be either (`1,234`, `1.234`, `1,234.5`,
`1.234,5`) is refused with a message instead of guessed. A whole file can settle "auto" by the
values that show their mark beyond doubt (`decimal_evidence`).
"""

import re

DECIMAL_MARKS = {"auto": "either, refuse what is ambiguous", "comma": "decimal comma (1.234,5)",
                 "point": "decimal point (1,234.5)"}
EXPONENT = r"(?:[eE][+-]?\d+)?"
SPACES = str.maketrans("", "", " \u00a0\u202f\u2009'")  # thousands separators no one reads otherwise
GROUPED = re.compile(r"[+-]?[1-9]\d{0,2}(?:[.,]\d{3})+")  # 1,234 or 1.234: thousands, or a decimal?
ONE_MARK = re.compile(rf"[+-]?(?:\d+(?P<mark>[.,])?\d*|(?P<lead>[.,])\d+){EXPONENT}")


def clean(text: str) -> str:
    return text.strip().replace("\u2212", "-").translate(SPACES)


def parse_number(text: str, decimal_mark: str = "auto") -> float:
    """The number a person meant by `text`; ValueError names the problem (kept short: reports group by it)."""
    value = clean(text)
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
    if GROUPED.fullmatch(value):
        raise ValueError("ambiguous number: thousands separator or decimal mark? (choose the decimal mark)")
    if not ONE_MARK.fullmatch(value):
        raise ValueError("not a number")
    return float(value.replace(",", "."))


def decimal_evidence(text: str) -> str | None:
    """The decimal mark a value shows beyond doubt (`3,7` → "comma", `0.125` → "point"), else None."""
    value = clean(text)
    match = ONE_MARK.fullmatch(value)
    if not match or GROUPED.fullmatch(value):
        return None
    mark = match["mark"] or match["lead"]
    return {",": "comma", ".": "point"}.get(mark)
