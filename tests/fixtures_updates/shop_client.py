"""Imports names from shop, as application code does: aliases of shop's objects."""
from shop import price

price_table = {"price": price}


def order(qty):
    return price(qty)
