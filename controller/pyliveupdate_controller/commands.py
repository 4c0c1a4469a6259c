"""What the controller reads in the source of a command before it sends it: its own
commands (`patch(...)`, `use(...)`, ...), listings it answers itself, its `sticky=`
keyword, and the update ids a literal revert names. The source is parsed, never run."""
import ast

LOCAL_COMMANDS = ("patch", "procs", "ping", "use", "deploy", "more", "exit", "quit", "help")
LISTERS = ("LU", "FP", "LP", "FD", "LD", "VD")
REVERTERS = LISTERS + ("FuncProfiler", "LineProfiler", "FuncDebugger", "LineDebugger",
                       "VarDebugger", "UpdateBase")


def single_expression(src):
    """The expression node when src is one expression statement, else None."""
    try:
        tree = ast.parse(src.strip(), mode="exec")
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        return None
    return tree.body[0].value


def _literal_args(node):
    try:
        return (tuple(ast.literal_eval(a) for a in node.args),
                {k.arg: ast.literal_eval(k.value) for k in node.keywords})
    except ValueError:
        return None


def local_call(src):
    """('patch', args, kwargs) when src is one controller-side command, else None."""
    node = single_expression(src)
    if isinstance(node, ast.Name) and node.id in LOCAL_COMMANDS:
        return node.id, (), {}
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in LOCAL_COMMANDS):
        literal = _literal_args(node)
        return None if literal is None else (node.func.id, *literal)
    return None


def _method_call(node, owners, name):
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == name and isinstance(node.func.value, ast.Name)
            and node.func.value.id in owners)


def listing_call(src):
    """{'all': bool, 'detail': bool} when src is LU.ls(...) (or FP.ls(), ...), else None."""
    node = single_expression(src)
    if not _method_call(node, LISTERS, "ls") or len(node.args) > 1:
        return None
    literal = _literal_args(node)
    if literal is None:
        return None
    args, kwargs = literal
    if set(kwargs) - {"all", "detail"}:
        return None
    out = {"all": bool(args[0]) if args else False}
    out.update((k, bool(v)) for k, v in kwargs.items())
    return out


def literal_revert_ids(src):
    """The ids of `LU.revert(3)`, `LU.revert([3, 4])`, `UpdateManager.revert_update(3)`
    (literal ids only), else an empty set: the controller knows what the operator meant
    to revert even when no selected process lived to answer."""
    node = single_expression(src)
    if not (_method_call(node, REVERTERS, "revert")
            or _method_call(node, ("UpdateManager",), "revert_update")):
        return set()
    literal = _literal_args(node)
    if literal is None or len(literal[0]) != 1 or literal[1]:
        return set()
    ids = literal[0][0]
    ids = [ids] if isinstance(ids, int) else ids
    if not isinstance(ids, (list, tuple)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return set()
    return set(ids)


def without_sticky(src):
    """(src, sticky): a `sticky=` keyword of top-level calls is the controller's, not the
    target's; it is taken out of the source sent."""
    try:
        tree = ast.parse(src, mode="exec")
    except SyntaxError:
        return src, False
    sticky = None
    for stmt in tree.body:
        value = getattr(stmt, "value", None)
        if isinstance(stmt, (ast.Expr, ast.Assign)) and isinstance(value, ast.Call):
            for k in list(value.keywords):
                if k.arg == "sticky":
                    try:
                        sticky = bool(ast.literal_eval(k.value)) or bool(sticky)
                    except ValueError:
                        return src, False   # let the target say what is wrong with it
                    value.keywords.remove(k)
    if sticky is None:
        return src, False
    return ast.unparse(tree), sticky
