"""The fuzz corpora and every crasher found, replayed on each run of the suite, then a
bounded, seeded mutation run over them (the long coverage-guided runs are `make fuzz`).
Under `./dev test` this also runs with AddressSanitizer + UBSan on the C log reader."""
import os
import random
import sys

import pytest

FUZZ = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fuzz")
sys.path.insert(0, FUZZ)
import targets  # noqa: E402

MUTATIONS = {"protocol": 3000, "reader": 800}  # ~1-4 s each; `make fuzz` goes far longer


def _inputs(name):
    found = []
    for folder in (os.path.join(FUZZ, "corpus", name), os.path.join(FUZZ, "crashers")):
        for entry in sorted(os.listdir(folder)):
            if folder.endswith("crashers") and not entry.startswith(name + "-"):
                continue
            with open(os.path.join(folder, entry), "rb") as f:
                found.append((entry, f.read()))
    return found


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_corpus_and_crashers_replay_cleanly(name):
    inputs = _inputs(name)
    assert len(inputs) >= 3
    for entry, data in inputs:
        try:
            targets.TARGETS[name](data)
        except Exception as e:  # noqa: BLE001 - name the input that broke it
            raise AssertionError("%s input %s: %r" % (name, entry, e)) from e


def _mutate(rnd, data, pool):
    data = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(6)
        if op == 0 and data:                         # flip bits
            i = rnd.randrange(len(data))
            data[i] ^= 1 << rnd.randrange(8)
        elif op == 1 and data:                       # truncate
            del data[rnd.randrange(len(data)):]
        elif op == 2:                                # insert random bytes
            i = rnd.randrange(len(data) + 1)
            data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 16)))
        elif op == 3 and data:                       # interesting integers
            i = rnd.randrange(len(data))
            data[i:i + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                        b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00"])
        elif op == 4 and len(data) > 8:              # duplicate a slice
            i = rnd.randrange(len(data))
            j = min(len(data), i + rnd.randint(1, 64))
            data[j:j] = data[i:j]
        else:                                        # splice with another input
            other = rnd.choice(pool)
            cut = rnd.randrange(len(other) + 1)
            data = data[:rnd.randrange(len(data) + 1)] + other[cut:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_seeded_mutations_never_break_the_decoders(name):
    rnd = random.Random(20261126)
    pool = [d for _, d in _inputs(name)]
    target = targets.TARGETS[name]
    for n in range(MUTATIONS[name]):
        data = _mutate(rnd, rnd.choice(pool), pool)
        try:
            target(data)
        except Exception as e:  # noqa: BLE001
            raise AssertionError("%s mutation %d (%r...): %r" % (name, n, data[:80], e)) from e
