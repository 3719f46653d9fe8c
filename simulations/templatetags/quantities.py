"""`{{ value|quantity }}`: a stored {value, unit} as people read it, with its code unit beside."""

from django import template

register = template.Library()


def number(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(number(v) for v in value) + "]"
    return str(value)


@register.filter
def quantity(entry) -> str:
    if isinstance(entry, dict) and "source" in entry and "value" not in entry:
        return f"{entry['source']} (not evaluated)"
    if not isinstance(entry, dict) or "value" not in entry:
        return number(entry)
    unit = entry.get("unit") or ""
    text = f"{number(entry['value'])} {unit}".strip()
    if "code_value" in entry:
        text += f" ({number(entry['code_value'])} {entry['code_unit']})"
    if "source" in entry:
        text += f" = {entry['source']}"
    return text
