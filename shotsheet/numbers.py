"""Numbers as people type them: a decimal comma or point, never a silently different value.

German-speaking labs type `3,7`; a browser's number input turned that into 37, and an Excel log
read as English made it 37.0. Here the text is read as typed, for the entry form and the importer
alike: with the decimal mark "comma or point" (the default) a single comma or point is the
decimal mark, and whatever could be read two ways (`1,234.5`, `1.234,5`, `1,234`, `1.234`) is
refused with a message that says why. A sheet or an import that names its mark ("comma":
`1.234,5`, "point": `1,234.5`) also takes that mark's thousands separators. Each column of
an import settles "comma or point" by its values that show their mark beyond doubt (`decimal_evidence`).
Exponents beyond a float's (±308) are refused before any arithmetic.
"""

import re
from decimal import Decimal, InvalidOperation

AUTO, COMMA, POINT = "auto", "comma", "point"
DECIMAL_MARKS = [
    (AUTO, "comma or point (1,5 or 1.5; no thousands separators)"),
    (COMMA, "comma (1.234,5)"),
    (POINT, "point (1,234.5)"),
]
NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<digits>[\d.,]*)(?P<exponent>[eE][+-]?\d+)?")  # linear on long text
GROUPED = {COMMA: re.compile(r"\d{1,3}(\.\d{3})+(,\d*)?"), POINT: re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")}
THOUSANDS_SHAPED = re.compile(r"[1-9]\d{0,2}[.,]\d{3}")  # 1,234 or 1.234: a decimal, or thousands?
MAX_EXPONENT = 308  # a float's range (1.8e308); beyond it a number is a typo or an attack
SPACE_GROUPS = re.compile(r"(?<=\d)[ \u00a0\u202f\u2009'](?=\d{3}(?!\d))")  # 1 234 or 1'234: thousands only


class NumberError(ValueError):
    """The text is not a number, or not one number only.

    `str()` is the message for the person who typed it (with the text); `reason` says the same
    without the text, so an import report can group its rows by it.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NotANumber(NumberError):
    """No number at all (a word, a lone sign)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"'{quoted(text)}' is not a number.", "not a number")


def parse_number(text: str, decimal_mark: str = AUTO) -> Decimal:
    """The number a person meant by `text`, read with the sheet's (or the import's) decimal mark."""
    typed = SPACE_GROUPS.sub("", text.strip().replace("\u2212", "-"))  # a typographic minus is a minus
    match = NUMBER.fullmatch(typed)
    if not match or not any(c.isdigit() for c in match["digits"]):
        raise NotANumber(text)
    if match["exponent"] and too_far(match["exponent"]):
        raise NumberError(
            f"'{quoted(text)}' has an exponent beyond ±{MAX_EXPONENT}: no field holds such a number.",
            f"exponent beyond ±{MAX_EXPONENT}",
        )
    digits = plain_digits(text, match["digits"], decimal_mark)
    try:
        return Decimal(f"{match['sign']}{digits}{match['exponent'] or ''}")
    except InvalidOperation:
        raise NotANumber(text) from None


def too_far(exponent: str) -> bool:
    """An exponent no float holds: `1e400000` made a 400,000-digit int for an integer field (10 s of CPU)."""
    digits = exponent[1:].lstrip("+-").lstrip("0")
    return len(digits) > len(str(MAX_EXPONENT)) or int(digits or 0) > MAX_EXPONENT


def quoted(text: str) -> str:
    """The typed text for a message, cut short: a pasted page is not repeated back."""
    return text if len(text) <= 40 else f"{text[:37]}…"


def plain_digits(text: str, digits: str, decimal_mark: str) -> str:
    """The digits with a point as the decimal mark and no thousands separators."""
    if decimal_mark in GROUPED:
        separator, mark = (".", ",") if decimal_mark == COMMA else (",", ".")
        if GROUPED[decimal_mark].fullmatch(digits):
            digits = digits.replace(separator, "")
        elif re.fullmatch(rf"\d*\{separator}\d+", digits):  # a number, but with the other mark
            other = "point" if decimal_mark == COMMA else "comma"
            raise NumberError(
                f"'{quoted(text)}' does not fit this sheet's decimal mark, the {decimal_mark} "
                f"({'1.234,5' if decimal_mark == COMMA else '1,234.5'}).",
                f"decimal {other}, but this import reads decimal {decimal_mark}s",
            )
        elif separator in digits:
            raise NumberError(
                f"'{quoted(text)}' is not a number with this sheet's decimal mark, the {decimal_mark} "
                f"({'1.234,5' if decimal_mark == COMMA else '1,234.5'}).",
                "not a number",
            )
        if digits.count(mark) > 1:
            raise NumberError(f"'{quoted(text)}' has more than one decimal {decimal_mark}.", "not a number")
        return digits.replace(",", ".")
    if "," in digits and "." in digits:
        raise NumberError(
            f"'{quoted(text)}' has both a comma and a point: which one is the decimal mark? Type it "
            "without thousands separators (1234.5 or 1234,5), or set the sheet's decimal mark.",
            "ambiguous number: both a comma and a point (choose the decimal mark)",
        )
    if digits.count(",") > 1 or digits.count(".") > 1:
        raise NumberError(
            f"'{quoted(text)}' has more than one comma or point: type it without thousands separators.",
            "ambiguous number: thousands separator or decimal mark? (choose the decimal mark)",
        )
    if THOUSANDS_SHAPED.fullmatch(digits):
        whole, fraction = re.split("[.,]", digits)
        sign, mark = "-" if text.strip().startswith(("-", "\u2212")) else "", "," if "," in digits else "."
        raise NumberError(
            f"'{quoted(text)}' could be {sign}{whole}.{fraction} or {sign}{whole}{fraction}: write "
            f"{sign}{whole}{mark}{fraction}0 or {sign}{whole}{fraction}, or set the sheet's decimal mark.",
            "ambiguous number: thousands separator or decimal mark? (choose the decimal mark)",
        )
    return digits.replace(",", ".")


def decimal_evidence(text: str) -> str | None:
    """The decimal mark a value shows beyond doubt (`3,7` → "comma", `0.125` → "point"), else None."""
    match = NUMBER.fullmatch(SPACE_GROUPS.sub("", text.strip()))
    if not match:
        return None
    digits = match["digits"]
    marks = {mark for mark in ".," if mark in digits}
    if len(marks) != 1 or digits.count(marks.pop()) > 1 or THOUSANDS_SHAPED.fullmatch(digits):
        return None
    return COMMA if "," in digits else POINT
