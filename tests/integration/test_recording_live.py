"""Live aggregates on demand (issue 18): the flusher feeds them only once someone asks
(recorder_live(), as FP.top() does), after reading the log written so far back into them;
what they hold is then exactly what feeding them from the start would have given."""
import json

import pytest

from pyliveupdate import _reader
from support_recorder import EV_CALL, EV_RETURN, Log, private_dir, run_child

SEGMENT = 64 * 1024


def test_the_first_request_reads_the_past_back_and_the_hand_over_is_exact(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        path = e.recorder_start({d!r})
        for i in range(1000):
            e.recorder_emit(1, 1, 0)
            e.recorder_emit(6, 1, 10)
            e.recorder_emit(1, 2, 0)
            e.recorder_emit(3, 2, 0)
            e.recorder_emit(3, 1, 0)
        e.recorder_emit(1, 1, 0)          # open across the hand-over
        e.recorder_emit(6, 1, 11)
        e.recorder_flush()
        before = e.recorder_stats()["live"]
        funcs, lines = e.recorder_live()
        after = e.recorder_stats()["live"]
        e.recorder_emit(3, 1, 0)
        for i in range(500):
            e.recorder_emit(1, 3, 0)
            e.recorder_emit(3, 3, 0)
        e.recorder_flush()
        funcs2, lines2 = e.recorder_live()
        e.recorder_stop()
        print(json.dumps([path, before, after, sorted(funcs.items()), sorted(funcs2.items()),
                          [[k, v] for k, v in lines.items()], [[k, v] for k, v in lines2.items()]]))
    """)
    assert out.returncode == 0, out.stderr
    path, before, after, funcs, funcs2, lines, lines2 = json.loads(out.stdout)
    assert (before, after) == ("off", "on")
    funcs, funcs2 = dict(funcs), dict(funcs2)
    lines = {tuple(k): v for k, v in lines}
    lines2 = {tuple(k): v for k, v in lines2}
    assert funcs[1][0] == 1000 and funcs[2][0] == 1000 and 3 not in funcs
    assert lines[(1, 10)][0] == 1000 and (1, 11) not in lines
    # the call open at the hand-over began in the log and ended in the rings: counted once
    assert funcs2[1][0] == 1001 and funcs2[2][0] == 1000 and funcs2[3][0] == 500
    assert lines2[(1, 11)][0] == 1
    # times agree with the log's own (its resolution is a log tick, <= 8 ns)
    log = Log(path)
    opened, total = None, 0
    for ev in log.events:
        if ev[4] == 1 and ev[1] == EV_CALL:
            opened = ev[3]
        elif ev[4] == 1 and ev[1] == EV_RETURN:
            total += ev[3] - opened
    assert funcs2[1][1] == pytest.approx(total, rel=1e-3, abs=1001 * 16)


def test_a_thread_that_ended_before_the_request_is_counted(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, threading
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        def work():
            for i in range(300):
                e.recorder_emit(1, 5, 0)
                e.recorder_emit(3, 5, 0)
        t = threading.Thread(target=work)
        t.start()
        t.join()
        for _ in range(3):
            e.recorder_flush()            # its ring is drained to its end and forgotten
        funcs, _ = e.recorder_live()
        e.recorder_stop()
        print(json.dumps(sorted(funcs.items())))
    """)
    assert out.returncode == 0, out.stderr
    assert dict(json.loads(out.stdout))[5][0] == 300


def test_segments_are_read_back_and_what_the_budget_deleted_is_counted(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json, random
        from pyliveupdate import _engine as e
        rnd = random.Random(5)
        path = e.recorder_start({d!r}, segment_bytes={SEGMENT}, budget={4 * SEGMENT})
        for i in range(300_000):
            e.recorder_emit(1, 7, 0)
            e.recorder_emit(6, 7, rnd.randrange(1, 1 << 20))
            e.recorder_emit(3, 7, 0)
            if i % 20000 == 0:
                e.recorder_flush()
        e.recorder_flush()
        funcs, _ = e.recorder_live()
        stats = e.recorder_stats()
        e.recorder_stop()
        print(json.dumps([stats, sorted(funcs.items())]))
    """, timeout=180)
    assert out.returncode == 0, out.stderr
    stats, funcs = json.loads(out.stdout)
    assert stats["deleted_segments"] > 0 and stats["live"] == "on"
    assert stats["live_missed_segments"] == stats["deleted_segments"]
    kept = _reader.log_segments(stats["path"])
    returns = sum(1 for item in _reader.LogReader(kept)
                  if item[0] == "event" and item[1] == EV_RETURN)
    # a call whose CALL was in a deleted segment is not counted
    assert returns - 1 <= dict(funcs)[7][0] <= returns


def test_nobody_asks_nothing_is_fed(tmp_path):
    d = private_dir(tmp_path / "logs")
    out = run_child(f"""
        import json
        from pyliveupdate import _engine as e
        e.recorder_start({d!r})
        for i in range(10000):
            e.recorder_emit(1, 1, 0)
            e.recorder_emit(3, 1, 0)
        e.recorder_flush()
        print(json.dumps(e.recorder_stats()["live"]))
        e.recorder_stop()
    """)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == "off"
