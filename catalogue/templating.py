"""The admin's templates (dataset name, sourceFolder): `{name}` placeholders only, never Python's
attribute or index access (`{x.__class__}`), so a template is checked once when it is saved."""

from string import Formatter

PLACEHOLDERS = {
    "sheet": "the sheet's slug",
    "sheet_name": "the sheet's name",
    "experiment": "the experiment",
    "shot_key": "the shot key (empty without one)",
    "shot_number": "the shot number",
    "date": "the shot's date in the lab's zone, YYYY-MM-DD",
    "yyyymmdd": "the same, YYYYMMDD",
    "entry_id": "the entry's id",
    "author": "who typed the entry",
    "daq_profile": "the name of the entry's DAQ profile",
    "daq_folder": "`data_folder` of the entry's DAQ profile",
}
FIELD_PREFIX = "field_"  # {field_energy}: the entry's value of the field `energy`


class TemplateError(ValueError):
    pass


def names(template: str) -> list[str]:
    try:
        parsed = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"'{template}' is not a template: {exc}") from None
    found = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise TemplateError(f"'{{{name}}}': write a plain {{name}}, without '.', '[', ':' or '!'")
        if name not in PLACEHOLDERS and not name.startswith(FIELD_PREFIX):
            known = ", ".join(f"{{{n}}}" for n in PLACEHOLDERS)
            raise TemplateError(f"'{{{name}}}' is not known; use {known} or {{field_<key>}}")
        found.append(name)
    return found


def render(template: str, context: dict) -> str:
    """The template filled in; a placeholder without a value becomes empty text."""
    return template.format_map({name: "" if context.get(name) is None else context[name] for name in names(template)})


def render_path(template: str, context: dict) -> str:
    """A sourceFolder: as `render`, but no value walks out of the rule's folder (`..`) or holds a
    line break, and a value typed into the entry (a field, the shot key) adds no level (`/`):
    SciCat's archiver archives and retrieves the folder a dataset names."""
    for name in names(template):
        text = "" if context.get(name) is None else str(context[name])
        typed = name == "shot_key" or name.startswith(FIELD_PREFIX)
        if ".." in text.split("/") or (typed and "/" in text) or not text.isprintable():
            raise TemplateError(f"sourceFolder: {{{name}}} is {text!r}, which is not a folder name (no '/', '..')")
    return render(template, context)
