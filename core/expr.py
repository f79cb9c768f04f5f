"""A whitelisting evaluator for the numeric parameters of trajectory programs and grasp regions.

Parameters may be plain numbers or short arithmetic expressions over the objects' bounding-box
sizes, e.g. ``min(master.x, master.y)/2`` or ``-slave.z*0.5 + 0.01``. The text is parsed with
``ast`` and walked node by node; only these are accepted:

- numeric literals, ``+ - * / **``, unary ``-``/``+``, parentheses;
- the names ``master.x|y|z`` and ``slave.x|y|z`` (bbox extents in metres) and the constant ``pi``;
- calls to ``min``, ``max``, ``abs``, ``sqrt``, ``sin``, ``cos`` with positional arguments.

Anything else (other attributes, subscripts, other calls, keywords, lambdas, comprehensions, strings,
dunder names) raises `ExpressionError` naming what was rejected. Nothing is ever passed to eval/exec.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence

from core.errors import VLMimicError

MAX_LENGTH = 200
MAX_NODES = 64
MAX_ABS_EXPONENT = 8.0
OBJECT_NAMES = ("master", "slave")
AXES = ("x", "y", "z")
FUNCTIONS = {
    "min": min,
    "max": max,
    "abs": abs,
    "sqrt": math.sqrt,
    "sin": math.sin,
    "cos": math.cos,
}
CONSTANTS = {"pi": math.pi}

Sizes = Mapping[str, Sequence[float]]


class ExpressionError(VLMimicError):
    """A parameter expression is not in the allowed arithmetic language or cannot be evaluated."""


def _reject(text: str, why: str) -> ExpressionError:
    return ExpressionError(f"expression {text!r} rejected: {why}")


def parse(text: str) -> ast.Expression:
    """Parse and validate an expression; raises ExpressionError on anything outside the whitelist."""
    if not isinstance(text, str):
        raise ExpressionError(f"expression must be text or a number, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise _reject(text[:40] + "...", f"longer than {MAX_LENGTH} characters")
    if "__" in text:
        raise _reject(text, "dunder names are not allowed")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise _reject(text, f"not valid arithmetic ({e.msg})") from None
    n = 0
    for node in ast.walk(tree):
        n += 1
        if n > MAX_NODES:
            raise _reject(text, f"more than {MAX_NODES} syntax nodes")
        _check_node(text, node)
    return tree


def _check_node(text: str, node: ast.AST) -> None:
    if isinstance(node, ast.Expression | ast.Load):
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise _reject(text, f"only numbers are allowed as literals, got {node.value!r}")
        return
    if isinstance(node, ast.BinOp):
        if not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
            raise _reject(text, f"operator {type(node.op).__name__} is not allowed")
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise _reject(text, f"unary operator {type(node.op).__name__} is not allowed")
        return
    if isinstance(node, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow | ast.USub | ast.UAdd):
        return
    if isinstance(node, ast.Attribute):
        if not (isinstance(node.value, ast.Name) and node.value.id in OBJECT_NAMES and node.attr in AXES):
            raise _reject(text, f"attribute .{node.attr} is not allowed (only master.x|y|z, slave.x|y|z)")
        return
    if isinstance(node, ast.Name):
        # Bare names: constants and function names (checked in context by the evaluator) and the
        # object names, which are only legal as the base of an allowed attribute.
        if node.id not in CONSTANTS and node.id not in FUNCTIONS and node.id not in OBJECT_NAMES:
            raise _reject(text, f"name {node.id!r} is not allowed")
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise _reject(text, f"only calls to {', '.join(FUNCTIONS)} are allowed")
        if node.keywords:
            raise _reject(text, "keyword arguments are not allowed")
        if not node.args:
            raise _reject(text, f"{node.func.id}() needs arguments")
        return
    raise _reject(text, f"{type(node).__name__} is not allowed")


def _eval(text: str, node: ast.AST, sizes: Sizes) -> float:
    if isinstance(node, ast.Expression):
        return _eval(text, node.body, sizes)
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.UnaryOp):
        v = _eval(text, node.operand, sizes)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a = _eval(text, node.left, sizes)
        b = _eval(text, node.right, sizes)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            if b == 0.0:
                raise _reject(text, "division by zero")
            return a / b
        if abs(b) > MAX_ABS_EXPONENT:
            raise _reject(text, f"exponent {b:g} is larger than {MAX_ABS_EXPONENT:g}")
        if a < 0 and not float(b).is_integer():
            raise _reject(text, "fractional power of a negative number")
        if a == 0.0 and b < 0:
            raise _reject(text, "zero to a negative power")
        return float(a**b)
    if isinstance(node, ast.Attribute):
        name = node.value.id  # type: ignore[attr-defined]
        if name not in sizes:
            raise _reject(text, f"{name} sizes are not known here (have {sorted(sizes)})")
        return float(sizes[name][AXES.index(node.attr)])
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        use = "a call" if node.id in FUNCTIONS else f"{node.id}.x|y|z"
        raise _reject(text, f"{node.id!r} must be used as {use}")
    if isinstance(node, ast.Call):
        fn = node.func.id  # type: ignore[attr-defined]
        args = [_eval(text, a, sizes) for a in node.args]
        if fn in ("sqrt", "sin", "cos", "abs") and len(args) != 1:
            raise _reject(text, f"{fn}() takes one argument")
        if fn == "sqrt" and args[0] < 0:
            raise _reject(text, "sqrt of a negative number")
        return float(FUNCTIONS[fn](*args))
    raise _reject(text, f"{type(node).__name__} is not allowed")  # pragma: no cover - parse() rejects first


def evaluate(value: float | int | str, sizes: Sizes) -> float:
    """The value of a number or an allowed expression given bbox sizes {"master": (x, y, z), ...}."""
    if isinstance(value, bool):
        raise ExpressionError("a boolean is not a number")
    if isinstance(value, int | float):
        v = float(value)
    else:
        tree = parse(value)
        try:
            v = _eval(value, tree, sizes)
        except (OverflowError, ValueError) as e:
            raise _reject(value, str(e)) from None
    if not math.isfinite(v):
        raise ExpressionError(f"expression {value!r} is not finite")
    return v


def validate(value: float | int | str) -> float | str:
    """Check the syntax of a parameter without sizes (used by pydantic validators)."""
    if isinstance(value, bool):
        raise ExpressionError("a boolean is not a number")
    if isinstance(value, int | float):
        if not math.isfinite(float(value)):
            raise ExpressionError(f"parameter {value!r} is not finite")
        return float(value)
    parse(value)
    return value


def names_used(value: float | str) -> set[str]:
    """Which size names (e.g. 'master.x') an expression refers to."""
    if not isinstance(value, str):
        return set()
    return {
        f"{n.value.id}.{n.attr}"  # type: ignore[attr-defined]
        for n in ast.walk(parse(value))
        if isinstance(n, ast.Attribute)
    }


def size_fraction(value_m: float, size_m: float, name: str, *, nice_tol_m: float = 0.002) -> str | float:
    """Express a length as a fraction of a bbox extent; snaps to a simple fraction when within tolerance.

    >>> size_fraction(0.15, 0.3, "master.x")
    'master.x*0.5'
    """
    if size_m <= 1e-6:
        return round(float(value_m), 5)
    f = value_m / size_m
    for den in (1, 2, 4, 8):
        nice = round(f * den) / den
        if abs(nice - f) * size_m <= nice_tol_m:
            f = nice
            break
    if f == 0:
        return 0.0
    return f"{name}*{f:.5g}"
