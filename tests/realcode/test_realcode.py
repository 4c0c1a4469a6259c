"""Real code: the test suites of pinned PyPI packages, run under every kind of update.

Each package's own suite runs (a) plain, with cProfile as the count reference, (b) under
FuncProfiler "<pkg>.**", (c) under an Instrument counting func_begin/func_end on
"<pkg>.**", (d) after a Redefine of every module-level function with its own source, and
after reverting those.  (b) and (c) run on each event source this interpreter offers.

    outcomes  every test's outcome, subtests included, equals (a)'s
    errors    no handler, matcher or dispatch error, no engine report, no dropped record
    counts    per function of the package (module and class bodies are no function and
              no update's target): (b)'s log (pylu-processlogs --format json)
              and (c)'s handlers equal cProfile's; generators compare as slices in the log
              and as frames for handlers (support_realcode.instrument_expected)

Each package's runs happen once per session, in subprocesses (tests/realcode/pylu_realcode_plugin.py)."""
import pytest

from support_realcode import (
    ON_312, PACKAGES, count_differences, in_package, instrument_expected,
    outcome_differences, problems, run, short,
)

SOURCES = ("monitoring",) if ON_312 else ("monitoring", "frame")
UPDATE_MODES = tuple("%s/%s" % (m, s) for m in ("funcprofiler", "instrument") for s in SOURCES)
MODES = ("cprofile",) + UPDATE_MODES + ("redefine", "redefine-reverted")

pytestmark = pytest.mark.timeout(1200)


def cases(modes):
    return [pytest.param(p, m, id="%s-%s" % (p, m.replace("/", "-")))
            for p in PACKAGES for m in modes]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """get(package, mode) -> Run, each run once per session."""
    done = {}

    def get(package, mode):
        if (package, mode) not in done:
            name, _, source = mode.partition("/")
            workdir = tmp_path_factory.mktemp("%s-%s" % (package, mode.replace("/", "-")))
            done[(package, mode)] = run(PACKAGES[package], name, workdir, source or None)
        return done[(package, mode)]
    return get


@pytest.mark.parametrize("package,mode", cases(MODES))
def test_outcomes_equal_the_plain_run(runs, package, mode):
    plain, other = runs(package, "plain"), runs(package, mode)
    assert plain.result and len(plain.outcomes()) > 100, plain.output
    assert other.result, other.output
    diffs = outcome_differences(plain, other)
    assert not diffs, "%s %s: outcomes differ from the plain run:\n%s" % (
        package, mode, "\n".join(diffs))
    assert other.returncode == plain.returncode, other.output


@pytest.mark.parametrize("package,mode", cases(UPDATE_MODES + (
    "redefine", "redefine-reverted")))
def test_no_errors(runs, package, mode):
    r = runs(package, mode)
    found = problems(r)
    assert not found, "%s %s:\n%s" % (package, mode, "\n".join(found))
    if mode.startswith("redefine"):
        assert r.result["redefined"] > 50 and not r.result["redefine_skipped"], r.result
        want = "applied" if mode == "redefine" else "reverted"
        assert {u["status"] for u in r.result["updates"]} == {want}


def check_counts(runs, package, mode):
    reference, r = runs(package, "cprofile"), runs(package, mode)
    calls = in_package(reference.result["counts"], reference)
    assert len(calls) > 100, "the reference run saw too little of %s" % package
    if mode.startswith("funcprofiler"):
        # the log's slices: calls plus generator resumptions, as cProfile counts them
        diffs = count_differences(calls, in_package(r.log_counts, reference), 1)
    else:
        expected, generators = instrument_expected(reference)
        got = in_package(r.result["counts"], reference)
        diffs = count_differences(expected, got, 0)
        diffs += ["end " + d for d in count_differences(
            {k: v for k, v in expected.items() if k not in generators},
            {k: v for k, v in got.items() if k not in generators}, 1)]
        diffs += ["%s: a generator ended more often than it began" % short(k)
                  for k in generators if got.get(k, [0, 0])[1] > got.get(k, [0, 0])[0]]
    assert not diffs, "%s %s: counts differ from cProfile's:\n%s" % (
        package, mode, "\n".join(diffs))


@pytest.mark.parametrize("package,mode", cases(UPDATE_MODES))
def test_counts_equal_cprofile(runs, package, mode):
    check_counts(runs, package, mode)
