"""A SMILEI namelist (`smilei.py`, Python) read without running it.

A namelist is a Python program, and running one from a shared folder runs whatever it contains.
So it is parsed (`ast`), never executed: top-level assignments and the keyword arguments of SMILEI's
blocks (`Main(...)`, `Species(...)`, `Laser*(...)`, …) are read; a value is evaluated only when it
uses nothing but numbers, strings, lists, arithmetic, `math` functions and constants and names the
namelist defined before, and otherwise kept as its source text. A namelist that imports anything
but `math`/`cmath`/`numpy`, or calls anything but SMILEI's blocks, profiles and math functions, is
refused with the line that does it.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field

ALLOWED_IMPORTS = {"math", "cmath", "numpy", "scipy.constants"}
# SMILEI's namelist blocks (its `pyinit.py` classes) and profile functions (`pyprofiles.py`).
BLOCKS = {
    "Main",
    "LoadBalancing",
    "MultipleDecomposition",
    "Vectorization",
    "MovingWindow",
    "Checkpoints",
    "CurrentFilter",
    "FieldFilter",
    "Species",
    "ParticleInjector",
    "Laser",
    "LaserPlanar1D",
    "LaserGaussian2D",
    "LaserGaussian3D",
    "LaserGaussianAM",
    "LaserOffset",
    "LaserEnvelope",
    "LaserEnvelopePlanar1D",
    "LaserEnvelopeGaussian2D",
    "LaserEnvelopeGaussian3D",
    "LaserEnvelopeGaussianAM",
    "ExternalField",
    "PrescribedField",
    "Antenna",
    "Collisions",
    "RadiationReaction",
    "MultiphotonBreitWheeler",
    "DiagScalar",
    "DiagFields",
    "DiagProbe",
    "DiagParticleBinning",
    "DiagRadiationSpectrum",
    "DiagScreen",
    "DiagTrackParticles",
    "DiagNewParticles",
    "DiagPerformances",
    "ParticleData",
}
PROFILES = {
    "constant",
    "trapezoidal",
    "gaussian",
    "polygonal",
    "cosine",
    "polynomial",
    "tconstant",
    "ttrapezoidal",
    "tgaussian",
    "tpolygonal",
    "tcosine",
    "tpolynomial",
    "tsin2plateau",
    "LaserGaussian2D",
    "gaussian_beam",
    "plane_wave",
}
# Cheap math only: `math.factorial(10**7)` is arithmetic too, and would take minutes.
MATH_FUNCTIONS = (
    "sqrt exp log log10 log2 sin cos tan asin acos atan atan2 sinh cosh tanh radians degrees fabs hypot floor ceil"
)
MATH = {name: getattr(math, name) for name in MATH_FUNCTIONS.split()} | {"pi": math.pi, "e": math.e, "tau": math.tau}
OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
MAX_POWER = 1024  # 10**10**10 is arithmetic too: refused rather than computed for minutes


class NamelistError(ValueError):
    """The namelist does something a reader must not run; the message names the line."""


@dataclass
class Namelist:
    constants: dict = field(default_factory=dict)  # name → value (evaluated) or {"source": text}
    blocks: list[dict] = field(default_factory=list)  # {"block": "Species", "line": n, "args": {...}}

    def first(self, block_prefix: str) -> dict | None:
        return next((b["args"] for b in self.blocks if b["block"].startswith(block_prefix)), None)


class Unevaluated(Exception):
    pass


def read_namelist(text: str, filename: str = "smilei.py") -> Namelist:
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise NamelistError(f"{filename}, line {exc.lineno}: not Python ({exc.msg})") from None
    check_safe(tree, filename)
    namelist = Namelist()
    known: dict = dict(MATH)  # `from math import pi` and `math.pi` both read as math's
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and all(isinstance(t, ast.Name) for t in statement.targets):
            value = value_of(statement.value, known, text)
            for target in statement.targets:
                namelist.constants[target.id] = value
                if not isinstance(value, dict) or "source" not in value:
                    known[target.id] = value
        elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
            call = statement.value
            name = call_name(call)
            if name in BLOCKS:
                args = {kw.arg: value_of(kw.value, known, text) for kw in call.keywords if kw.arg}
                namelist.blocks.append({"block": name, "line": statement.lineno, "args": args})
    return namelist


def check_safe(tree: ast.AST, filename: str) -> None:
    """Refuse what a reader must not even appear to accept: imports beyond math/numpy, calls of
    anything but blocks, profiles and math, dunder names (`__import__`, `__class__`)."""
    for node in ast.walk(tree):
        where = f"{filename}, line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            bad = [m for m in modules if m not in ALLOWED_IMPORTS]
            if bad:
                raise NamelistError(f"{where}: imports {', '.join(map(str, bad))}; a namelist is read, never run")
        elif isinstance(node, ast.Call):
            name = call_name(node)
            numpy_math = name.startswith(("np.", "numpy.")) and name.split(".")[-1] in MATH
            if name not in BLOCKS and name not in PROFILES and name not in MATH and not numpy_math:
                called = ast.unparse(node.func)[:80]
                raise NamelistError(f"{where}: calls {called}(); a namelist is read, never run")
        elif isinstance(node, ast.Name | ast.Attribute):
            text = node.id if isinstance(node, ast.Name) else node.attr
            if text.startswith("__"):
                raise NamelistError(f"{where}: uses {text}; a namelist is read, never run")
        elif isinstance(node, ast.FunctionDef | ast.Lambda | ast.ClassDef | ast.With | ast.While | ast.Global):
            kind = type(node).__name__
            raise NamelistError(f"{where}: a {kind}; profiles must be SMILEI's own functions to be read safely")


def call_name(call: ast.Call) -> str:
    """`Species`, `math.sqrt` → `sqrt`, `np.exp` → `np.exp`."""
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        if function.value.id in ("math", "cmath"):
            return function.attr
        return f"{function.value.id}.{function.attr}"
    return ""


def value_of(node: ast.AST, known: dict, text: str):
    """The value, or {"source": text} when it is not plain arithmetic on known names."""
    try:
        return evaluate(node, known)
    except (Unevaluated, ArithmeticError, TypeError, ValueError):
        return {"source": ast.get_source_segment(text, node) or ast.unparse(node)}


def number(value) -> int | float:
    """An arithmetic operand: numbers only (`"x" * 10**9` is a gigabyte), big integers as floats
    (so a tower of powers overflows at once instead of computing for minutes)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unevaluated(type(value).__name__)
    return float(value) if isinstance(value, int) and abs(value) > 2**53 else value


def evaluate(node: ast.AST, known: dict):
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str | bool | None):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [evaluate(item, known) for item in node.elts]
    if isinstance(node, ast.Name):
        if node.id in known and not callable(known[node.id]):
            return known[node.id]
        raise Unevaluated(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("math", "cmath"):
        value = MATH.get(node.attr)
        if isinstance(value, float):
            return value
        raise Unevaluated(node.attr)
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = number(evaluate(node.left, known)), number(evaluate(node.right, known))
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POWER:
            raise Unevaluated("power")
        return OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](number(evaluate(node.operand, known)))
    if isinstance(node, ast.Call) and not node.keywords:
        function = MATH.get(call_name(node))
        if function is not None and callable(function):
            return function(*[number(evaluate(arg, known)) for arg in node.args])
    raise Unevaluated(type(node).__name__)
