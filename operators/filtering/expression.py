"""A small, safe expression language for row filters, evaluated with pyarrow compute.

Text is parsed with :func:`ast.parse` and every node is checked against a whitelist, then
translated into a tree of closures over ``pyarrow.compute``; nothing is ever ``eval``'d.

Null semantics follow SQL (Kleene logic): an operation on a null gives null, ``and``/``or``
use three-valued logic, ``x in [...]`` is null when ``x`` is null, and division by zero is
null. :meth:`CompiledExpression.evaluate` turns a final null into False ("not kept").
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

Value = pa.Array | pa.ChunkedArray | pa.Scalar
Node = Callable[[pa.Table], Value]

ALLOWED_FORMS = (
    "column names; int, float, str and True/False literals; `and`, `or`, `not`; unary `-`; "
    "`+ - * /`; comparisons `< <= > >= == !=` (chains allowed); `x in [literals]` and "
    "`x not in [literals]`; calls is_null(x), is_valid(x), len(x), floor(x)"
)

_COMPARE = {
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
}
_ARITHMETIC = {ast.Add: "add_checked", ast.Sub: "subtract_checked", ast.Mult: "multiply_checked"}
_BOOL = {ast.And: "and_kleene", ast.Or: "or_kleene"}
_CONSTRUCT_NAMES = {
    "Attribute": "attribute access",
    "Subscript": "subscript",
    "Lambda": "lambda",
    "IfExp": "conditional expression",
    "NamedExpr": "assignment expression",
    "JoinedStr": "f-string",
    "List": "list outside 'in'",
    "Tuple": "tuple outside 'in'",
    "ListComp": "comprehension",
    "SetComp": "comprehension",
    "DictComp": "comprehension",
    "GeneratorExp": "comprehension",
    "Starred": "starred argument",
}
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


class ExpressionError(ValueError):
    """An expression that cannot be parsed, uses a construct outside the whitelist, or does
    not fit the columns it is evaluated on."""


class MissingColumnError(ExpressionError):
    """An expression names a column the table does not have."""


def _length(value: Value) -> Value:
    """``len(x)``: code points of strings, bytes of binaries, items of lists."""
    kind = value.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return pc.list_value_length(value)
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return pc.binary_length(value)
    return pc.utf8_length(value)


_CALLS: dict[str, Callable[[Value], Value]] = {
    "is_null": pc.is_null,
    "is_valid": pc.is_valid,
    "len": _length,
    "floor": pc.floor,  # e.g. score deciles, floor(rank * 10), as a mix's groups
}


def _divide(left: Value, right: Value) -> Value:
    """True division in float64; a zero divisor gives null rather than an infinity."""
    left, right = pc.cast(left, pa.float64()), pc.cast(right, pa.float64())
    return pc.if_else(pc.equal(right, 0.0), pa.scalar(None, pa.float64()), pc.divide(left, right))


def _require_boolean(value: Value, what: str) -> Value:
    """``value`` as booleans, after checking that it is boolean (or all-null)."""
    if pa.types.is_null(value.type):  # an all-null column or literal: unknown everywhere
        return value.cast(pa.bool_())
    if not pa.types.is_boolean(value.type):
        raise ExpressionError(f"{what} must be boolean, got {value.type}")
    return value


def _negation(value: Value) -> Value:
    """Kleene ``not``: null stays null."""
    return pc.invert(_require_boolean(value, "the operand of 'not'"))


@dataclass(frozen=True)
class CompiledExpression:
    """A checked expression, ready to evaluate on tables.

    Attributes:
        text: The source text.
        columns: Column names referenced, in order of first appearance.
    """

    text: str
    columns: tuple[str, ...]
    _root: Node = field(repr=False, compare=False)

    def __reduce__(self) -> tuple[Callable[[str], CompiledExpression], tuple[str]]:
        # The closures do not pickle; the text recompiles to the same expression.
        return parse_expression, (self.text,)

    def evaluate(self, table: pa.Table) -> pa.BooleanArray:
        """Evaluate on every row of ``table``; null results become False (not kept).

        Args:
            table: Rows to evaluate; must hold every column in :attr:`columns`.

        Returns:
            One non-null boolean per row.

        Raises:
            MissingColumnError: A referenced column is absent.
            ExpressionError: The column types do not fit the expression.
        """
        return pc.fill_null(self.values(table, boolean=True).cast(pa.bool_()), False)

    def values(self, table: pa.Table, boolean: bool = False) -> pa.Array:
        """The expression's value on every row of ``table`` (nulls kept), whatever its type
        unless ``boolean``; e.g. a group label. Raises as :meth:`evaluate`."""
        missing = [name for name in self.columns if name not in table.column_names]
        if missing:
            raise MissingColumnError(
                f"expression {self.text!r} needs column(s) {missing} but the table has "
                f"{table.column_names}"
            )
        value = self._root(table)
        if boolean:
            value = _require_boolean(value, f"the result of {self.text!r}")
        if isinstance(value, pa.Scalar):
            value = pa.repeat(value, table.num_rows)
        if isinstance(value, pa.ChunkedArray):
            value = value.combine_chunks()
        return value


class _Compiler:
    """Translates a checked :mod:`ast` tree into closures; one instance per expression."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.columns: dict[str, None] = {}  # ordered set

    def fail(self, node: ast.AST, problem: str) -> ExpressionError:
        """An error naming ``problem``, the offending source text and its position."""
        segment = ast.get_source_segment(self.text, node) or type(node).__name__
        line = self.text.splitlines()[node.lineno - 1]
        # ast offsets count UTF-8 bytes; report characters.
        column = len(line.encode()[: node.col_offset].decode(errors="ignore"))
        where = f"column {column}" if node.lineno == 1 else f"line {node.lineno}, column {column}"
        return ExpressionError(
            f"{problem}: {segment!r} at {where} of {self.text!r}; allowed: {ALLOWED_FORMS}"
        )

    def guarded(self, node: ast.AST, operation: Callable[..., Value], *args: Node) -> Node:
        """A closure applying ``operation`` to its evaluated ``args``, with readable errors."""
        segment = ast.get_source_segment(self.text, node)

        def run(table: pa.Table) -> Value:
            values = [arg(table) for arg in args]
            try:
                return operation(*values)
            except MissingColumnError:
                raise
            except ExpressionError as exc:
                raise ExpressionError(f"{exc} in {segment!r} of {self.text!r}") from None
            except _ARROW_ERRORS as exc:
                types = ", ".join(str(value.type) for value in values)
                raise ExpressionError(
                    f"cannot evaluate {segment!r} in {self.text!r} on types ({types}): {exc}"
                ) from exc

        return run

    def compile(self, node: ast.AST) -> Node:
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            kind = _CONSTRUCT_NAMES.get(type(node).__name__, type(node).__name__)
            raise self.fail(node, f"unsupported construct ({kind})")
        return method(node)

    def visit_Expression(self, node: ast.Expression) -> Node:
        return self.compile(node.body)

    def visit_Constant(self, node: ast.Constant) -> Node:
        if node.value is None:
            raise self.fail(node, "None is not a value; test nulls with is_null(x) or is_valid(x)")
        if not isinstance(node.value, (bool, int, float, str)):
            raise self.fail(node, f"unsupported {type(node.value).__name__} literal")
        try:
            scalar = pa.scalar(node.value)
        except (OverflowError, pa.ArrowInvalid) as exc:
            raise self.fail(node, f"literal out of range ({exc})") from None
        return lambda table: scalar

    def visit_Name(self, node: ast.Name) -> Node:
        name = node.id
        self.columns.setdefault(name)
        return lambda table: table[name]

    def visit_BoolOp(self, node: ast.BoolOp) -> Node:
        function = _BOOL[type(node.op)]
        word = "and" if isinstance(node.op, ast.And) else "or"
        operands = [self.compile(value) for value in node.values]

        def combine(*values: Value) -> Value:
            checked = [_require_boolean(value, f"each operand of '{word}'") for value in values]
            result = checked[0]
            for value in checked[1:]:
                result = pc.call_function(function, [result, value])
            return result

        return self.guarded(node, combine, *operands)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Node:
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return self.guarded(node, _negation, operand)
        if isinstance(node.op, ast.USub):
            return self.guarded(node, pc.negate_checked, operand)
        raise self.fail(node, f"unsupported unary operator {type(node.op).__name__}")

    def visit_BinOp(self, node: ast.BinOp) -> Node:
        left, right = self.compile(node.left), self.compile(node.right)
        if isinstance(node.op, ast.Div):
            return self.guarded(node, _divide, left, right)
        function = _ARITHMETIC.get(type(node.op))
        if function is None:
            raise self.fail(node, f"unsupported operator {type(node.op).__name__}")
        return self.guarded(node, lambda a, b: pc.call_function(function, [a, b]), left, right)

    def visit_Compare(self, node: ast.Compare) -> Node:
        if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            if len(node.ops) > 1:
                raise self.fail(node, "'in' cannot be chained with other comparisons")
            test = self.membership(node.comparators[0], negate=isinstance(node.ops[0], ast.NotIn))
            return self.guarded(node, test, self.compile(node.left))
        # A chain a < b < c is (a < b) and (b < c), each operand evaluated once.
        functions = []
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise self.fail(node, f"unsupported comparison operator {type(op).__name__}")
            functions.append(_COMPARE[type(op)])
        operands = [self.compile(operand) for operand in (node.left, *node.comparators)]

        def chain(*values: Value) -> Value:
            result = pc.call_function(functions[0], [values[0], values[1]])
            for index, function in enumerate(functions[1:], start=1):
                outcome = pc.call_function(function, [values[index], values[index + 1]])
                result = pc.and_kleene(result, outcome)
            return result

        return self.guarded(node, chain, *operands)

    def membership(self, literal: ast.AST, negate: bool) -> Callable[[Value], Value]:
        """The test ``left in literal`` (or ``not in``), null when ``left`` is null."""
        if not isinstance(literal, (ast.List, ast.Tuple)):
            raise self.fail(literal, "the right side of 'in' must be a list of literals")
        items = []
        for element in literal.elts:
            negative = isinstance(element, ast.UnaryOp) and isinstance(element.op, ast.USub)
            constant = element.operand if negative else element
            numeric = isinstance(getattr(constant, "value", None), (int, float)) and not isinstance(
                constant.value, bool
            )
            if not isinstance(constant, ast.Constant) or (negative and not numeric):
                raise self.fail(element, "'in' lists hold only int, float, str or bool literals")
            self.visit_Constant(constant)  # the same literal checks as elsewhere
            items.append(-constant.value if negative else constant.value)
        try:
            value_set = pa.array(items)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise self.fail(literal, f"an 'in' list must not mix literal types ({exc})") from None
        null = pa.scalar(None, pa.bool_())

        def test(left: Value) -> Value:
            if len(value_set):
                found = pc.is_in(left, value_set=value_set)
            else:
                found = pa.scalar(False)
            if negate:
                found = pc.invert(found)
            return pc.if_else(pc.is_null(left), null, found)

        return test

    def visit_Call(self, node: ast.Call) -> Node:
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _CALLS:
            raise self.fail(node, f"unsupported call (only {', '.join(_CALLS)} may be called)")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.fail(node, f"{name}() takes exactly one positional argument")
        return self.guarded(node, _CALLS[name], self.compile(node.args[0]))


def parse_expression(text: str) -> CompiledExpression:
    """Parse and check ``text``; the result evaluates it on tables.

    Args:
        text: A Python-syntax boolean expression over column names, e.g.
            ``"quality_word_count >= 50 and lang_code in ['en', 'de']"``.

    Returns:
        The compiled expression, with the columns it references.

    Raises:
        ExpressionError: A syntax error or a construct outside the whitelist, naming it and
            its position.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"syntax error in {text!r} at column {(exc.offset or 1) - 1}: {exc.msg}; "
            f"allowed: {ALLOWED_FORMS}"
        ) from None
    compiler = _Compiler(text.strip())
    root = compiler.compile(tree)
    return CompiledExpression(text=text.strip(), columns=tuple(compiler.columns), _root=root)
