"""A SMILEI namelist is read, never run: only arithmetic on numbers and known names is evaluated."""

import math

import pytest

from simulations.extract.namelist import NamelistError, read_namelist


def test_literal_values_and_arithmetic_on_earlier_names_are_evaluated():
    namelist = read_namelist("from math import pi, sqrt\nl0 = 2*pi\nw = sqrt(2.) * l0\nn = [1, 2.5, -3]\nname = 'e'\n")
    assert namelist.constants == {"l0": 2 * math.pi, "w": math.sqrt(2) * 2 * math.pi, "n": [1, 2.5, -3], "name": "e"}


def test_anything_else_stays_as_its_source_text():
    namelist = read_namelist(
        "a = unknown_name * 2\nb = 'x' * 10**9\nc = 10**10**10\nd = (10**200)**200\nMain(t=gaussian(1., 2.))\n"
    )
    assert namelist.constants["a"] == {"source": "unknown_name * 2"}
    assert namelist.constants["b"] == {"source": "'x' * 10**9"}  # never a gigabyte string
    assert namelist.constants["c"] == {"source": "10**10**10"}  # never minutes of arithmetic
    assert namelist.constants["d"] == {"source": "(10**200)**200"}
    assert namelist.blocks == [{"block": "Main", "line": 5, "args": {"t": {"source": "gaussian(1., 2.)"}}}]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("import subprocess\n", "line 1: imports subprocess"),
        ("from os import path\n", "line 1: imports os"),
        ("Main(x=__import__('os'))\n", "line 1: calls __import__()"),
        ("x = eval('1')\n", "line 1: calls eval()"),
        ("x = math.factorial(100000)\n", "line 1: calls math.factorial()"),
        ("def f(x):\n    return x\n", "line 1: a FunctionDef"),
        ("x = (lambda: 1)()\n", "line 1: calls lambda: 1()"),
        ("x = [].__class__\n", "line 1: uses __class__"),
        ("x = np.load('data.npy')\n", "line 1: calls np.load()"),
    ],
)
def test_a_namelist_that_imports_or_calls_anything_is_refused(text, problem):
    with pytest.raises(NamelistError) as refused:
        read_namelist(text, "run/smilei.py")
    assert problem in str(refused.value) and "run/smilei.py" in str(refused.value)
