"""Apply with patch('patch.py') from pylu-controller while program1.py runs.

Redefines module1.foo; because the function object is updated in place, the copy of
foo imported into program1's __main__ changes too: bar(2) then prints "new foo 4".
"""
from pyliveupdate.update import Redefine, UpdateManager


def _predefine():
    from module2 import double  # noqa: F401  (runs in module1's namespace)


def new_foo(a):
    print('new foo', double(a))  # noqa: F821  (double is module1's, from _predefine)


update = Redefine('module1', _predefine, {'module1.foo': new_foo})
UpdateManager.apply_update(update)
