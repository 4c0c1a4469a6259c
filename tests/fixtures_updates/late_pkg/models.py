from late_pkg import IMPORTED

IMPORTED.append("models")


def save(obj):
    return obj
