"""Predefined modifications: FP, LP, FD, LD, VD, LU (placeholder until the updates land)."""


def predefined():
    return {}


def update_state():
    return {"active": [], "known": []}
