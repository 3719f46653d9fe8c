"""MongoDB's reading of a document, for code that filters documents it already holds (the shot
sheet's in-memory table, the watcher's search over events fetched by `_id`) and must answer as
the server's `find` would."""


def lookup(document: dict, path: str):
    """The value at a dotted path through subdocuments, or None when any part is missing."""
    value = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def values_at(document: dict, path: str) -> list:
    """The values an equality filter on a dotted path compares, as MongoDB finds them: through
    arrays of subdocuments on the way, and each element of an array at the end."""
    values: list = [document]
    for part in path.split("."):
        found = []
        for value in values:
            if isinstance(value, dict) and part in value:
                found.append(value[part])
            elif isinstance(value, list):
                found.extend(item[part] for item in value if isinstance(item, dict) and part in item)
        values = found
    return [item for value in values for item in (value if isinstance(value, list) else [value])]


def same(a, b) -> bool:
    """Equality as MongoDB sees it: 1 == 1.0, but true is not 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def equals(document: dict, path: str, wanted) -> bool:
    """`{path: wanted}` as a MongoDB filter reads it: any value at the path (an array's
    elements included) equal to `wanted`."""
    return any(same(value, wanted) for value in values_at(document, path))
