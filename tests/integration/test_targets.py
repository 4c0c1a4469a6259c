"""Target patterns -> code objects, and the errors for patterns that match nothing."""
import importlib
import sys

import pytest

from support_updates import FIXTURES, run_json

sys.path.insert(0, FIXTURES)

from pyliveupdate import targets  # noqa: E402
from pyliveupdate.targets import TargetError  # noqa: E402

shop = importlib.import_module("shop")


def names(pattern):
    return [t.name for t in targets.resolve(pattern)]


def test_plain_function_is_its_code_object():
    (t,) = targets.resolve("shop.price")
    assert t.code is shop.price.__code__ and t.function is shop.price
    assert t.module == "shop" and t.qualname == "price"


def test_methods_static_class_and_property_members():
    got = names("shop.Cart.*")
    assert got == ["shop.Cart.__init__", "shop.Cart.add", "shop.Cart.unit", "shop.Cart.make",
                   "shop.Cart.size", "shop.Cart.__getattr__"]
    (t,) = targets.resolve("shop.Cart.size")
    assert t.code is shop.Cart.__dict__["size"].fget.__code__


def test_nested_classes_closures_and_decorated_functions():
    assert names("shop.Cart.Line.describe") == ["shop.Cart.Line.describe"]
    (inner,) = targets.resolve("shop.make_counter.step")
    assert inner.code is shop.make_counter(0).__code__     # the closure's code, via co_consts
    (wrapped,) = targets.resolve("shop.discounted")
    assert wrapped.code is shop.discounted.__wrapped__.__code__
    (cached,) = targets.resolve("shop.cached_rate")
    assert cached.code is shop.cached_rate.__wrapped__.__code__


def test_double_star_covers_every_depth_but_not_imports():
    got = names("shop.**")
    for expected in ("shop.price", "shop.make_counter.<locals>.step", "shop.deco.<locals>.wrapper",
                     "shop.ticker", "shop.fetch", "shop.Cart.Line.describe", "shop.Cart.size"):
        assert expected in got
    assert not any("lru_cache" in n or n.startswith("functools") for n in got)
    assert len(got) == len(set(got))


def test_resolution_runs_no_user_code():
    del shop.ACCESS_LOG[:]
    targets.resolve("shop.**")
    targets.resolve("shop.Cart.*")
    with pytest.raises(TargetError):
        targets.resolve("shop.cart.nothing")
    assert shop.ACCESS_LOG == []


@pytest.mark.parametrize("pattern, expected", [
    ("shop.prise", "did you mean price"),
    ("shop.Cart.ad", "shop.Cart has no function, class or member 'ad'; did you mean add"),
    ("shop.Cart.TAX", "shop.Cart.TAX is an int"),
    ("shopp.price", "module 'shopp' is not imported"),
    ("shop", "is a module"),
    ("*.price", "wildcard can only follow a module name"),
    ("shop..price", "malformed"),
    ("", "non-empty string"),
])
def test_patterns_that_match_nothing_say_what_exists(pattern, expected):
    with pytest.raises(TargetError) as err:
        targets.resolve(pattern)
    assert expected in str(err.value)


def test_program_own_code_excludes_stdlib_site_packages_and_ourselves():
    result, _ = run_json("""
        import json, sys, shop, shop_client, email.utils
        import pyliveupdate.targets as T
        def main_func():
            return 1
        got = [t.name for t in T.resolve('**')]
        print(json.dumps(got))
    """)
    assert "__main__.main_func" in result and "shop.price" in result
    assert "shop_client.order" in result
    assert not [n for n in result if n.startswith(("email", "json", "pyliveupdate", "pytest"))]


def test_leading_double_star_with_a_name_finds_it_in_any_own_module():
    result, _ = run_json("""
        import json, shop, shop_client
        import pyliveupdate.targets as T
        print(json.dumps([t.name for t in T.resolve('**.describe')]))
    """)
    assert result == ["shop.Cart.Line.describe"]


def test_matcher_accepts_code_of_modules_imported_later():
    result, _ = run_json("""
        import json, sys
        import pyliveupdate.targets as T
        every = T.CodeMatcher('**')
        one = T.CodeMatcher('shop.Cart.*')
        import shop                                   # imported after the matchers exist
        import email.utils
        print(json.dumps([every(shop.price.__code__), one(shop.Cart.add.__code__),
                          one(shop.price.__code__), every(email.utils.quote.__code__),
                          one(shop.Cart.Line.describe.__code__)]))
    """)
    assert result == [["shop", "price"], ["shop", "Cart.add"], None, None, None]


def test_package_double_star_covers_its_imported_submodules():
    result, _ = run_json("""
        import json, pkgdemo
        import pyliveupdate.targets as T
        print(json.dumps([[t.name for t in T.resolve('pkgdemo.**')],
                          [t.name for t in T.resolve('pkgdemo.sub.**')]]))
    """)
    assert result == [["pkgdemo.top", "pkgdemo.sub.helper"], ["pkgdemo.sub.helper"]]
