"""Coverage-guided fuzzing with atheris (pip install -e '.[fuzz]'):

    python tests/fuzz/run_atheris.py protocol -max_total_time=600
    python tests/fuzz/run_atheris.py reader -max_total_time=600

New interesting inputs go to tests/fuzz/corpus/<target>/ next to the seeds; a crash is
written to tests/fuzz/crashers/<target>-*; copy it there under a telling name and the
normal suite replays it from then on (tests/test_hardening_fuzz.py).
"""
import os
import sys

import atheris

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

with atheris.instrument_imports():
    import targets  # noqa: E402  (instruments pyliveupdate.protocol with it)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit("usage: run_atheris.py {%s} [libFuzzer options]" % ",".join(targets.TARGETS))
    name = sys.argv[1]
    corpus = os.path.join(HERE, "corpus", name)
    crashers = os.path.join(HERE, "crashers")
    os.makedirs(crashers, exist_ok=True)
    args = [sys.argv[0], *sys.argv[2:], "-artifact_prefix=%s/%s-" % (crashers, name), corpus]
    atheris.Setup(args, targets.TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
