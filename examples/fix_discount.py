"""Hot fix for webservice.py: apply with patch('examples/fix_discount.py').

quote() applied the bulk discount twice for orders of 50 or more. The new quote runs
with the service's own globals (CATALOG, TAX_RATE, bulk_discount, ...).
"""
from pyliveupdate.update import Redefine, UpdateManager


def quote(item, qty):
    unit = CATALOG[item]["price"]  # noqa: F821  (the service's globals)
    discount = bulk_discount(qty)  # noqa: F821
    subtotal = unit * qty * (1 - discount)
    tax = subtotal * TAX_RATE  # noqa: F821
    total = subtotal + tax + shipping_cost(item, qty)  # noqa: F821
    return {"item": item, "qty": qty, "subtotal": round(subtotal, 2),
            "tax": round(tax, 2), "total": round(total, 2)}


UpdateManager.apply_update(Redefine('__main__', None, {'__main__.quote': quote}))
