"""Derived-feature expressions: arithmetic over feature names, parsed and evaluated safely.

An expression such as `dc_voltage * dc_current / 1000` or `where(ac_power > 0, ac_power /
dc_power, 0)` is parsed by Python's `ast` module into a tree and checked against a whitelist
of node types; it is evaluated by walking that tree with numpy over whole arrays. Nothing of
the text is ever handed to Python's `eval`, `exec` or `compile`, so an expression can reach no
attribute, builtin or module: anything but numbers, feature names, `+ - * / **`, comparisons,
parentheses and the functions `abs`, `min`, `max` and `where` is refused when it is parsed.

Values are float64. NaN is "no data" and spreads: an operation with a NaN operand is NaN,
comparisons included (so `where` of an unknown condition is unknown too). A result that is not
finite (a division by zero, an overflow) is NaN as well: a derived feature stores no infinity.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

MAX_EXPRESSION_CHARS: Final = 1000
"""Longer expressions are refused before they are parsed."""

MAX_NODES: Final = 200
"""Operands, operators and calls in one expression."""

MAX_DEPTH: Final = 30
"""Nesting of operations and parentheses."""

FUNCTIONS: Final = ("abs", "min", "max", "where")

_BINARY: Final[dict[type[ast.operator], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_BINARY_SYMBOLS: Final = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}

_COMPARE: Final[dict[type[ast.cmpop], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}

# How a refused node is named in the error message.
_REFUSED: Final[dict[type[ast.AST], str]] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.BoolOp: "'and'/'or' (use where(...) and comparisons)",
    ast.IfExp: "'... if ... else ...' (use where(condition, a, b))",
    ast.NamedExpr: "assignments",
    ast.Starred: "starred arguments",
    ast.JoinedStr: "strings",
    ast.List: "lists",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
}


class ExpressionError(ValueError):
    """The expression is not one this evaluator accepts; the message says why."""


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, the feature names it reads (in order of first use) and
    its tree, which only `evaluate` walks."""

    text: str
    names: tuple[str, ...]
    _tree: ast.expr

    def evaluate(self, inputs: Mapping[str, np.ndarray], length: int | None = None) -> np.ndarray:
        """The expression over arrays of equal length, one per name (NaN = no data); returns a
        float64 array of that length, NaN where the result is unknown or not finite.

        `length` is the result's length when the inputs do not give it (an expression of
        constants only is not accepted, so they always do)."""
        missing = [name for name in self.names if name not in inputs]
        if missing:
            raise ExpressionError(f"no values given for {', '.join(missing)}")
        arrays = {name: np.asarray(inputs[name], dtype="float64") for name in self.names}
        lengths = {array.shape for array in arrays.values()}
        if len(lengths) > 1:
            raise ExpressionError(f"inputs of different lengths: {sorted(lengths)}")
        shape = lengths.pop() if lengths else (length or 0,)
        with np.errstate(all="ignore"):
            result = np.broadcast_to(_evaluate(self._tree, arrays), shape).astype("float64")
        result[~np.isfinite(result)] = np.nan
        return result


def parse_expression(text: str) -> Expression:
    """Parses and checks `text`; `ExpressionError` names what is not allowed.

    Refused: an empty or too long (`MAX_EXPRESSION_CHARS`) or too complex (`MAX_NODES`,
    `MAX_DEPTH`) expression, one that names no feature, any syntax but numbers, names,
    `+ - * / **`, unary `+`/`-`, comparisons and calls of `abs`, `min`, `max` and `where`,
    names that start with an underscore, and function names used as values."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"the expression is {len(text)} characters long; at most {MAX_EXPRESSION_CHARS}"
        )
    if "\x00" in text:
        raise ExpressionError("the expression contains a NUL character")
    try:
        # Parsing builds a tree and runs nothing; the length bound keeps it cheap.
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"not an expression: {error.msg} (column {error.offset})") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"the expression is nested deeper than {MAX_DEPTH} levels") from None
    names: list[str] = []
    _check(tree.body, names, depth=1, count=[0])
    if not names:
        raise ExpressionError("the expression names no feature")
    return Expression(text=text.strip(), names=tuple(dict.fromkeys(names)), _tree=tree.body)


def _check(node: ast.AST, names: list[str], *, depth: int, count: list[int]) -> None:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise ExpressionError(f"the expression has more than {MAX_NODES} terms")
    if depth > MAX_DEPTH:
        raise ExpressionError(f"the expression is nested deeper than {MAX_DEPTH} levels")
    deeper = depth + 1
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionError(
                f"not allowed in an expression: {_what_constant(value)} (only numbers)"
            )
        try:
            float(value)
        except OverflowError:
            raise ExpressionError(f"number {str(value)[:20]}... is too large") from None
    elif isinstance(node, ast.Name):
        _check_name(node.id)
        if node.id in FUNCTIONS:
            raise ExpressionError(f"{node.id!r} is a function: call it, e.g. {node.id}(...)")
        names.append(node.id)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError(
                f"operator {_operator_text(node.op)} is not allowed: only + - * / **"
            )
        _check(node.left, names, depth=deeper, count=count)
        _check(node.right, names, depth=deeper, count=count)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.UAdd | ast.USub):
            raise ExpressionError(
                f"operator {_operator_text(node.op)} is not allowed: only + - * / **"
            )
        _check(node.operand, names, depth=deeper, count=count)
    elif isinstance(node, ast.Compare):
        for operator in node.ops:
            if type(operator) not in _COMPARE:
                raise ExpressionError(
                    f"comparison {_operator_text(operator)} is not allowed: only < <= > >= == !="
                )
        for operand in (node.left, *node.comparators):
            _check(operand, names, depth=deeper, count=count)
    elif isinstance(node, ast.Call):
        _check_call(node)
        for argument in node.args:
            _check(argument, names, depth=deeper, count=count)
    else:
        what = _REFUSED.get(type(node), type(node).__name__)
        raise ExpressionError(f"not allowed in an expression: {what}")


def _check_name(name: str) -> None:
    if name.startswith("_"):
        raise ExpressionError(f"name {name!r} is not allowed: names may not start with '_'")


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(
            f"only the functions {', '.join(FUNCTIONS)} may be called, not "
            f"{ast.unparse(node.func)!r}"
        )
    name = node.func.id
    _check_name(name)
    if name not in FUNCTIONS:
        raise ExpressionError(
            f"unknown function {name!r}: only {', '.join(FUNCTIONS)} may be called"
        )
    if node.keywords:
        raise ExpressionError(f"{name}() takes no keyword arguments")
    if any(isinstance(argument, ast.Starred) for argument in node.args):
        raise ExpressionError(f"starred arguments are not allowed in {name}()")
    given = len(node.args)
    if name == "abs" and given != 1:
        raise ExpressionError(f"abs() takes one argument, got {given}")
    if name in ("min", "max") and given < 2:
        raise ExpressionError(f"{name}() takes two or more arguments, got {given}")
    if name == "where" and given != 3:
        raise ExpressionError(f"where() takes three arguments (condition, then, else), got {given}")


def _what_constant(value: object) -> str:
    if isinstance(value, str | bytes):
        return "strings"
    if value is None or isinstance(value, bool):
        return f"constants like {value!r}"
    if value is Ellipsis:
        return "'...'"
    return f"{type(value).__name__} numbers"


def _operator_text(operator: ast.AST) -> str:
    symbols = {
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.MatMult: "@",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.Invert: "~",
        ast.Not: "not",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.In: "in",
        ast.NotIn: "not in",
    }
    return repr(symbols.get(type(operator), type(operator).__name__))


def _evaluate(node: ast.expr, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Walks a tree that `_check` accepted; every value is a float64 array or scalar."""
    if isinstance(node, ast.Constant):
        return np.asarray(float(node.value))  # type: ignore[arg-type]  # checked: int or float
    if isinstance(node, ast.Name):
        return arrays[node.id]
    if isinstance(node, ast.BinOp):
        operation = _BINARY[type(node.op)]
        return operation(_evaluate(node.left, arrays), _evaluate(node.right, arrays))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, arrays)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Compare):
        return _compare(node, arrays)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        arguments = [_evaluate(argument, arrays) for argument in node.args]
        name = node.func.id
        if name == "abs":
            return np.abs(arguments[0])
        if name in ("min", "max"):
            # np.minimum/np.maximum keep NaN: an unknown input gives an unknown result.
            combine = np.minimum if name == "min" else np.maximum
            result = arguments[0]
            for argument in arguments[1:]:
                result = combine(result, argument)
            return result
        condition, then, otherwise = arguments
        chosen = np.where(condition != 0, then, otherwise)
        return np.where(np.isnan(condition), np.nan, chosen)
    raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover


def _compare(node: ast.Compare, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """1.0 or 0.0, NaN where an operand is NaN; `a < b < c` is `a < b` and `b < c`."""
    left = _evaluate(node.left, arrays)
    result: np.ndarray = np.float64(1.0)  # type: ignore[assignment]
    unknown: np.ndarray = np.bool_(False)  # type: ignore[assignment]
    for operator, comparator in zip(node.ops, node.comparators, strict=True):
        right = _evaluate(comparator, arrays)
        holds = _COMPARE[type(operator)](left, right)
        result = result * holds.astype("float64")
        unknown = unknown | np.isnan(left) | np.isnan(right)
        left = right
    return np.where(unknown, np.nan, result)
