"""Numbers as people type them: a decimal comma or point, never a silently different value.

German-speaking labs type `3,7`; a browser's number input turned that into 37. Here the text is
read as typed: with the sheet's decimal mark "comma or point" (the default) a single comma or
point is the decimal mark, and whatever could be read two ways (`1,234.5`, `1.234,5`, `1,234`)
is refused with a message that says why. A sheet that names its mark ("comma": `1.234,5`,
"point": `1,234.5`) also takes that mark's thousands separators.
"""

import re
from decimal import Decimal, InvalidOperation

AUTO, COMMA, POINT = "auto", "comma", "point"
DECIMAL_MARKS = [(AUTO, "comma or point (1,5 or 1.5; no thousands separators)"),
                 (COMMA, "comma (1.234,5)"), (POINT, "point (1,234.5)")]
NUMBER = re.compile(r"(?P<sign>[+-]?)(?P<digits>[\d.,]*)(?P<exponent>[eE][+-]?\d+)?")  # linear on long text
GROUPED = {COMMA: re.compile(r"\d{1,3}(\.\d{3})+(,\d*)?"), POINT: re.compile(r"\d{1,3}(,\d{3})+(\.\d*)?")}
THOUSANDS_SHAPED = re.compile(r"[1-9]\d{0,2},\d{3}")


class NumberError(ValueError):
    """The text is not a number, or not one number only: the message says which and why."""


class NotANumber(NumberError):
    """No number at all (a word, a lone sign)."""


def parse_number(text: str, decimal_mark: str = AUTO) -> Decimal:
    """The number a person meant by `text`, read with the sheet's decimal mark."""
    typed = text.strip().replace("\u2212", "-")  # a typographic minus is a minus
    match = NUMBER.fullmatch(typed)
    if not match or not any(c.isdigit() for c in match["digits"]):
        raise NotANumber(f"'{quoted(text)}' is not a number.")
    digits = plain_digits(text, match["digits"], decimal_mark)
    try:
        return Decimal(f"{match['sign']}{digits}{match['exponent'] or ''}")
    except InvalidOperation:
        raise NotANumber(f"'{quoted(text)}' is not a number.") from None


def quoted(text: str) -> str:
    """The typed text for a message, cut short: a pasted page is not repeated back."""
    return text if len(text) <= 40 else f"{text[:37]}…"


def plain_digits(text: str, digits: str, decimal_mark: str) -> str:
    """The digits with a point as the decimal mark and no thousands separators."""
    if decimal_mark in GROUPED:
        separator, mark = (".", ",") if decimal_mark == COMMA else (",", ".")
        if GROUPED[decimal_mark].fullmatch(digits):
            digits = digits.replace(separator, "")
        elif separator in digits:
            raise NumberError(f"'{quoted(text)}' does not fit this sheet's decimal mark, the {decimal_mark} "
                              f"({'1.234,5' if decimal_mark == COMMA else '1,234.5'}).")
        if digits.count(mark) > 1:
            raise NumberError(f"'{quoted(text)}' has more than one decimal {decimal_mark}.")
        return digits.replace(",", ".")
    if "," in digits and "." in digits:
        raise NumberError(f"'{quoted(text)}' has both a comma and a point: which one is the decimal mark? Type it "
                          "without thousands separators (1234.5 or 1234,5), or set the sheet's decimal mark.")
    if digits.count(",") > 1 or digits.count(".") > 1:
        raise NumberError(f"'{quoted(text)}' has more than one comma or point: type it without thousands separators.")
    if THOUSANDS_SHAPED.fullmatch(digits):
        whole, fraction = digits.split(",")
        raise NumberError(f"'{quoted(text)}' could be {whole}.{fraction} or {whole}{fraction}: type it so, "
                          "or set the sheet's decimal mark.")
    return digits.replace(",", ".")
