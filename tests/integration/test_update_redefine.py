"""Redefine (hot patch) in real processes: aliases, kinds, load from threads, revert order,
bad input, quiescence."""
import itertools

from support_updates import run_json


def test_readme_patch_example_changes_aliases_imported_elsewhere():
    result, out = run_json("""
        import json
        import shop, shop_client
        from pyliveupdate.update import Redefine, UpdateManager

        def predefine():
            from helpers2 import double

        def new_price(qty):
            return double(qty) * 100          # 'double' comes from the module's globals

        before = [shop_client.order(2), shop_client.price_table['price'](2)]
        update = Redefine('shop', predefine, {'shop.price': new_price})
        UpdateManager.apply_update(update)
        after = [shop_client.order(2), shop_client.price_table['price'](2), shop.price(2)]
        UpdateManager.revert_update(update.id)
        reverted = [shop_client.order(2), hasattr(shop, 'double')]
        print(json.dumps([before, after, reverted, repr(update)]))
    """)
    before, after, reverted, rep = result
    assert before == [20, 20]
    assert after == [400, 400, 400]
    assert reverted == [20, False]
    assert "Update 1 applied" in out and "Update 1 reverted" in out
    assert rep == "{type: redefine, status: reverted, module: shop, redefined: [shop.price]}"


def test_predefine_none_as_in_the_readme_and_new_module_level_names():
    result, _ = run_json("""
        import json, shop
        from pyliveupdate.update import Redefine, UpdateManager
        def new_price(qty, rate=None):
            "New doc."
            return qty * (rate or RATE)
        new_price.exposed = True
        u = Redefine('shop', None, {'shop.price': new_price, 'shop.RATE': 7})
        UpdateManager.apply_update(u)
        a = [shop.price(3), shop.price(3, 2), shop.price.__doc__, shop.price.exposed]
        UpdateManager.revert_update(u.id)
        print(json.dumps([a, shop.price(3), hasattr(shop, 'RATE'), shop.price.__defaults__,
                          hasattr(shop.price, 'exposed'), shop.price.__doc__]))
    """)
    assert result == [[21, 6, "New doc.", True], 30, False, None, False, None]


def test_every_kind_of_member_and_class_redefinition_with_existing_instances():
    result, _ = run_json("""
        import json, shop
        from pyliveupdate.update import Redefine, UpdateManager
        old_cart = shop.Cart()                     # an instance made before the patch
        bound_add = old_cart.add                   # a previously bound method

        class Cart:                                # the patch's version of the class
            TAX = 5
            def add(self, item):
                self.items.append(item)
                return ('v2', len(self.items), True)
            @staticmethod
            def unit():
                return 'usd'
            @classmethod
            def make(cls):
                return ('made', cls.__name__)
            @property
            def size(self):
                return len(self.items) * 100
            def total(self):                       # a new method, using super()
                return self.TAX + self.size + (super().__init__ is not None)
            class Line:
                def describe(self):
                    return 'line v2'

        def new_step_factory(start):               # closure: same free variable
            count = start
            def step(by):
                nonlocal count
                count += by * 10
                return count
            return step

        def new_discounted(amount):                 # reached through functools.wraps
            return amount - 50

        u = Redefine('shop', None, {'shop.Cart': Cart, 'shop.make_counter': new_step_factory,
                                    'shop.discounted': new_discounted,
                                    'shop.cached_rate': lambda code: 2})
        shop.cached_rate('x')
        UpdateManager.apply_update(u)
        new = [bound_add('a'), old_cart.add('b'), shop.Cart.unit(), shop.Cart.make(),
               old_cart.size, old_cart.total(), shop.Cart.TAX, shop.Cart.Line().describe(),
               shop.make_counter(1)(1), shop.discounted(100), shop.cached_rate('x'),
               type(old_cart) is shop.Cart]
        UpdateManager.revert_update(u.id)
        old = [old_cart.add('c'), shop.Cart.unit(), type(shop.Cart.make()).__name__,
               old_cart.size, hasattr(old_cart, 'total'), shop.Cart.TAX,
               shop.Cart.Line().describe(), shop.make_counter(1)(1), shop.discounted(100),
               shop.cached_rate('x')]
        print(json.dumps([new, old]))
    """)
    new, old = result
    assert new == [["v2", 1, True], ["v2", 2, True], "usd", ["made", "Cart"], 200, 206, 5,
                   "line v2", 11, 50, 2, True]
    assert old == [3, "eur", "Cart", 3, False, 0, "line", 2, 99, 1]


def test_changed_closure_variables_rebind_the_name_and_its_module_aliases():
    result, _ = run_json("""
        import json, shop, shop_client
        from pyliveupdate.update import Redefine, UpdateManager
        def make():
            factor = 3
            def price(qty):                    # one free variable; the original has none
                return qty * factor
            return price
        u = Redefine('shop', None, {'shop.price': make()})
        UpdateManager.apply_update(u)
        new = [shop.price(2), shop_client.order(2), shop_client.price is shop.price]
        UpdateManager.revert_update(u.id)
        print(json.dumps([new, [shop.price(2), shop_client.order(2)]]))
    """)
    assert result == [[6, 6, True], [20, 20]]


def test_redefinition_under_load_from_several_threads_has_no_failed_call():
    result, _ = run_json("""
        import json, sys, threading, shop, shop_client
        from pyliveupdate.update import Redefine, UpdateManager
        stop = threading.Event()
        failures, seen = [], {}
        def work(name, call):
            vals = seen.setdefault(name, set())
            while not stop.is_set():
                try:
                    vals.add(repr(call()))
                except Exception as e:             # any failed call fails the test
                    failures.append('%s: %r' % (name, e))
        cart = shop.Cart()
        calls = {'func': lambda: shop_client.order(1), 'method': lambda: type(cart.add(1)).__name__,
                 'static': shop.Cart.unit, 'property': lambda: cart.size >= 0,
                 'closure': lambda: shop.make_counter(0)(1)}
        threads = [threading.Thread(target=work, args=kv, name=kv[0]) for kv in calls.items()]
        for t in threads: t.start()

        def price(qty): return -qty
        class Cart:
            def add(self, item): return 'v2'
            @staticmethod
            def unit(): return 'usd'
            @property
            def size(self): return -1
        def make_counter(start):
            count = start
            def step(by):
                nonlocal count
                return 'v2'
            return step
        import time
        sys.setswitchinterval(0.0002)            # switch threads often: more interleavings
        for round in range(20):
            u = Redefine('shop', None, {'shop.price': price, 'shop.Cart': Cart,
                                        'shop.make_counter': make_counter})
            assert UpdateManager.apply_update(u)
            time.sleep(0.002)
            assert UpdateManager.revert_update(u.id)
            time.sleep(0.002)
        stop.set()
        for t in threads: t.join(10)
        print(json.dumps([failures, {k: sorted(v) for k, v in seen.items()}]))
    """, timeout=120)
    failures, seen = result
    assert failures == []
    assert {"10", "-1"} <= set(seen["func"])
    assert {"'int'", "'str'"} <= set(seen["method"])
    assert {"'eur'", "'usd'"} <= set(seen["static"])
    assert {"1", "'v2'"} <= set(seen["closure"])


def test_revert_in_every_order_of_three_stacked_redefinitions():
    orders = [list(p) for p in itertools.permutations([0, 1, 2])]
    result, _ = run_json("""
        import json, itertools, shop, shop_client
        from pyliveupdate.update import Redefine, UpdateManager
        def v(n):
            def price(qty):
                return n
            return price
        results = []
        updates = None
        for order in %r:
            if updates is None:
                updates = [Redefine('shop', None, {'shop.price': v(n)}) for n in (1, 2, 3)]
                for u in updates: assert UpdateManager.apply_update(u)
            else:                                  # re-apply by id, in id order
                for u in updates: assert UpdateManager.apply_update(u.id)
            trace = [shop_client.order(0)]
            for i in order:
                assert UpdateManager.revert_update(updates[i].id)
                trace.append(shop_client.order(0))
            results.append(trace)
        print(json.dumps(results))
    """ % orders)
    original = 0
    for order, trace in zip(orders, result):
        applied = [1, 2, 3]
        expected = [3]
        for i in order:
            applied.remove(i + 1)
            expected.append(applied[-1] if applied else original)
        assert trace == expected, (order, trace)


def test_bad_redefinitions_are_refused_and_change_nothing():
    result, out = run_json("""
        import json, shop
        from pyliveupdate.update import Redefine, UpdateManager, UpdateError
        def good(qty): return 'patched'
        def gen(qty): yield qty
        class Meta(type): pass
        class CartMeta(metaclass=Meta):
            pass
        class CartBases(dict):
            pass
        class CartSlots:
            __slots__ = ('a',)
        cases = {
            'generator for function': {'shop.price': good, 'shop.ticker': good},
            'function for generator': {'shop.price': good, 'shop.ticker': lambda n: n},
            'function for class': {'shop.price': good, 'shop.Cart': good},
            'missing class': {'shop.price': good, 'shop.Nope.m': good},
            'metaclass': {'shop.price': good, 'shop.Cart': CartMeta},
            'bases': {'shop.price': good, 'shop.Cart': CartBases},
            'slots': {'shop.price': good, 'shop.Cart': CartSlots},
            'other module': {'shop.price': good, 'json.dumps': good},
            'nested function': {'shop.price': good, 'shop.make_counter.step': good},
        }
        codes = (shop.price.__code__, shop.ticker.__code__, dict(vars(shop.Cart)))
        errors = {}
        for name, defs in cases.items():
            try:
                Redefine('shop', None, defs)
                errors[name] = None
            except UpdateError as e:
                errors[name] = str(e)
        try:
            Redefine('not_imported_mod', None, {})
        except UpdateError as e:
            errors['module'] = str(e)
        unchanged = (shop.price.__code__ is codes[0] and shop.ticker.__code__ is codes[1]
                     and dict(vars(shop.Cart)) == codes[2] and shop.price(1) == 10)
        print(json.dumps([errors, unchanged, len(UpdateManager._updates)]))
    """)
    errors, unchanged, registered = result
    assert unchanged and registered == 0
    assert "is a generator" in errors["generator for function"] or \
        "running one is a generator" in errors["generator for function"]
    assert "running one is a generator" in errors["function for generator"]
    assert "is a class" in errors["function for class"]
    assert "has no class 'Nope'" in errors["missing class"]
    assert "metaclass changes" in errors["metaclass"]
    assert "base classes change" in errors["bases"]
    assert "__slots__" in errors["slots"]
    assert "in module json, not in shop" in errors["other module"]
    assert "Module not_imported_mod not found" in errors["module"]
    assert "redefine the enclosing shop.make_counter" in errors["nested function"]


def test_wait_gives_up_cleanly_naming_the_blocking_thread_then_succeeds():
    result, out = run_json("""
        import json, threading, shop
        from pyliveupdate.update import Redefine, UpdateManager
        ev = threading.Event()
        res = []
        t = threading.Thread(target=lambda: res.append(shop.slow(ev)), name='busy-worker')
        t.start()
        import time; time.sleep(0.05)
        def slow(event):
            return 'new slow'
        u = Redefine('shop', None, {'shop.slow': slow}, wait=0.2)
        ok1 = UpdateManager.apply_update(u)
        status1 = u.status
        unchanged = shop.slow.__code__.co_filename.endswith('shop.py')
        ev.set(); t.join(5)
        ok2 = UpdateManager.apply_update(u)
        gen = shop.ticker(3); next(gen)              # a suspended generator of old code
        def ticker(n):
            yield 'new'
        g = Redefine('shop', None, {'shop.ticker': ticker}, wait=0.1)
        ok3 = UpdateManager.apply_update(g)
        status3 = g.status
        ok4 = UpdateManager.apply_update(Redefine('shop', None, {'shop.ticker': ticker}))
        print(json.dumps([ok1, status1, unchanged, res, ok2, shop.slow(None), ok3, status3,
                          ok4, list(gen), list(shop.ticker(3))]))
    """)
    ok1, status1, unchanged, res, ok2, now, ok3, status3, ok4, old_gen, new_gen = result
    assert not ok1 and "no quiescent point within 0.2 s" in status1
    assert "thread 'busy-worker' is running slow" in status1
    assert unchanged and res == ["old slow"]
    assert ok2 and now == "new slow"
    assert not ok3 and "suspended generator of ticker" in status3
    assert ok4 and old_gen == [2, 4] and new_gen == ["new"]   # old generator finishes on old code
    assert "Update 1 not applied: no quiescent point" in out


def test_ids_statuses_listing_and_id_blocks():
    result, out = run_json("""
        import json, shop
        from pyliveupdate.update import Redefine, UpdateManager, LU
        def p(qty): return 1
        a = Redefine('shop', None, {'shop.price': p})
        with UpdateManager.id_block(100) as blk:
            b = Redefine('shop', None, {'shop.price': p})
            c = Redefine('shop', None, {'shop.price': p})
        d = Redefine('shop', None, {'shop.price': p})
        UpdateManager.apply_update(a); UpdateManager.apply_update(b)
        UpdateManager.apply_update(b)                # already applied: refused, unchanged
        LU.revert(100)
        try:
            LU.revert(100)                           # not applied: printed, then raised
        except ValueError as e:
            assert str(e) == 'not reverted: 100'
        UpdateManager.revert_update(555)
        LU.apply([100])
        listing = UpdateManager.ls()
        print(json.dumps([[u.id for u in (a, b, c, d)], blk.used, a.status, c.status,
                          [x['id'] for x in listing], a.describe()]))
    """)
    ids, used, sa, sc, listed, desc = result
    assert ids == [1, 100, 101, 102] and used == 2
    assert sa == "applied" and sc == "created" and listed == [1, 100]
    assert desc["type"] == "redefine" and desc["redefined"] == ["shop.price"]
    assert "Update 100 not applied: update 100 is already applied" in out
    assert "Update 100 reverted" in out
    assert "Update 100 not reverted: update 100 is not applied (status: reverted)" in out
    assert "Update 555 not found" in out
    assert "1 : {type: redefine, status: applied, module: shop, redefined: [shop.price]}" in out


ATOMIC_SCRIPT = """
    import json, sys, threading, operator, shop
    from pyliveupdate.updates import commit as U
    from pyliveupdate.update import Redefine, UpdateManager
    if %(break_it)r:                             # control: a swap that is not atomic
        def slow_swap(sets, deletes=()):
            import time
            for obj, name, value in sets:
                setattr(obj, name, value); time.sleep(0)
        U.swap = slow_swap
    sys.setswitchinterval(0.0001)
    funcs = (shop.part_a, shop.part_b, shop.part_c)
    originals = tuple(f.__code__ for f in funcs)
    get = operator.attrgetter('__code__')
    stop = threading.Event()
    mixed = []
    snapshots = [0]
    def watch():
        while not stop.is_set():
            codes = tuple(map(get, funcs))           # one C call: an atomic snapshot
            old = [c is o for c, o in zip(codes, originals)]
            if any(old) and not all(old):
                mixed.append(old)
            snapshots[0] += 1
    t = threading.Thread(target=watch)
    t.start()
    def part_a(): return 'a2'
    def part_b(): return 'b2'
    def part_c(): return 'c2'
    for _ in range(100):
        u = Redefine('shop', None, {'shop.part_a': part_a, 'shop.part_b': part_b,
                                    'shop.part_c': part_c})
        u.apply()
        u.revert()
    stop.set(); t.join(10)
    print(json.dumps([len(mixed), snapshots[0]]))
"""


def test_a_multi_function_update_is_seen_all_at_once_by_other_threads():
    (mixed, snapshots), _ = run_json(ATOMIC_SCRIPT % {"break_it": False})
    assert snapshots > 0
    assert mixed == 0


def test_the_atomicity_check_catches_a_non_atomic_swap():
    # Control for the test above: a swap that lets other threads run between functions
    # is caught by the same watcher.
    (mixed, _), _ = run_json(ATOMIC_SCRIPT % {"break_it": True})
    assert mixed > 0
