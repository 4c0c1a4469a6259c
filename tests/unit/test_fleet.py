"""The controller's desired state (fleet.py): selectors, plans, learning, listing."""
from pyliveupdate_controller import commands, fleet


def ident(pid, instance="h/1/10", program_key="prog-a", program="app"):
    return fleet.Identity({"pid": pid, "host": "h", "instance": instance,
                           "program_key": program_key, "program": program})


MASTER, W1, W2 = ident(1), ident(2), ident(3)
RESTARTED = ident(9, instance="h/9/99")
OTHER = ident(5, instance="h/5/50", program_key="prog-b", program="other")


def test_a_whole_instance_is_selected_when_all_its_processes_are():
    sel = fleet.Selector.for_selection([MASTER, W1, W2], [MASTER, W1, W2, OTHER])
    assert sel.instances == {"h/1/10"} and not sel.processes
    assert sel.matches(ident(77)) and not sel.matches(OTHER) and not sel.matches(RESTARTED)
    assert sel.matches(RESTARTED, sticky=True)


def test_a_part_of_an_instance_selects_those_processes_only():
    sel = fleet.Selector.for_selection([W1], [MASTER, W1, W2])
    assert not sel.instances and sel.processes == {("h/1/10", 2)}
    assert sel.matches(W1) and not sel.matches(W2) and not sel.matches(ident(77))


def test_every_worker_but_not_the_master_selects_the_workers_to_come():
    # use(worker pids) on a prefork server: a replacement worker must get the update, the
    # master (who serves nothing) not.
    sel = fleet.Selector.for_selection([W1, W2], [MASTER, W1, W2])
    assert sel.matches(W1) and sel.matches(W2) and sel.matches(ident(77))
    assert not sel.matches(MASTER) and not sel.matches(OTHER)


def _state_with(*defs):
    state = fleet.DesiredState()
    for seq, base, used, live in defs:
        sel = fleet.Selector.for_selection([MASTER], [MASTER])
        state.add_command(seq, "src%s" % seq, "<controller>", base, used, sel, False,
                          [{i: "applied" for i in live}])
    return state


def test_plan_runs_what_a_new_worker_lacks_and_skips_inactive_ids():
    state = _state_with(("s1", 1, 1, [1]), ("s2", 2, 2, [2]), ("s3", 4, 1, []))
    msg, notes = state.plan(W1, {}, set())
    assert [m["seq"] for m in msg["run"]] == ["s1", "s2"]   # s3 failed everywhere: never sent
    assert msg["run"][1]["skip"] == [3] and msg["run"][1]["base"] == 2
    assert msg["revert"] == [] and notes == []
    # Already run there (inherited by fork): not again.
    msg, _ = state.plan(W1, {1: "applied", 2: "applied", 3: "applied"}, {"s1", "s2"})
    assert msg["run"] == [] and msg["revert"] == [3]


def test_plan_reconciles_a_process_that_comes_back():
    state = _state_with(("s1", 1, 1, [1]), ("s2", 2, 1, [2]))
    state.definitions["s2"].inactive[2] = "reverted"
    msg, _ = state.plan(W1, {1: "reverted", 2: "applied"}, {"s1", "s2"})
    assert msg["reapply"] == [1] and msg["revert"] == [2] and msg["run"] == []


def test_a_restart_is_told_and_an_unrelated_program_gets_nothing():
    state = _state_with(("s1", 1, 1, [1]))
    msg, notes = state.plan(RESTARTED, {}, set())
    assert msg["run"] == [] and "deploy([1], to=9)" in notes[0]
    assert state.plan(RESTARTED, {}, set())[1] == []       # said once per instance
    msg, notes = state.plan(OTHER, {}, set())
    assert msg["run"] == [] and notes == []
    state.definitions["s1"].sticky = True
    msg, _ = state.plan(ident(10, instance="h/10/100"), {}, set())
    assert [m["seq"] for m in msg["run"]] == ["s1"]


def test_ttl_is_carried_and_an_expired_update_is_not_sent():
    state = _state_with(("s1", 1, 1, [1]))
    state.note_ttl({1: 30.0}, now=100.0)
    msg, _ = state.plan(W1, {}, set(), now=110.0)
    assert msg["run"][0]["ttl"] == [[1, 20.0]]
    msg, _ = state.plan(W2, {}, set(), now=131.0)
    assert msg["run"] == []


def test_observe_a_revert_everywhere_makes_it_inactive_and_a_partial_one_excludes():
    state = _state_with(("s1", 1, 1, [1]))
    state.observe([(W1, {1: "applied"}, {1: "reverted"})],
                  [(W1, {1: "reverted"}), (W2, {1: "applied"})])
    assert state.definitions["s1"].selector.excluded == {("h/1/10", 2)}
    assert state.plan(W1, {1: "reverted"}, {"s1"})[0]["reapply"] == []
    state.observe([(W2, {1: "applied"}, {1: "reverted"})],
                  [(W1, {1: "reverted"}), (W2, {1: "reverted"})])
    assert state.definitions["s1"].inactive == {1: "reverted"}
    assert state.plan(ident(50), {}, set())[0]["run"] == []


def test_a_revert_nobody_lived_to_answer_still_makes_the_update_inactive():
    # Every selected worker was recycled during LU.revert(1): no reply, but the command
    # named the id, and no live process has it in effect.
    state = _state_with(("s1", 1, 1, [1]))
    state.observe([], [(ident(60), {})], reverted={1})
    assert state.definitions["s1"].inactive == {1: "reverted"}
    assert state.plan(ident(61), {}, set())[0]["run"] == []
    # ... unless a live process still has it (a revert in part of the fleet).
    state = _state_with(("s1", 1, 1, [1]))
    state.observe([], [(W2, {1: "applied"})], reverted={1})
    assert state.definitions["s1"].inactive == {}


def test_literal_revert_ids_are_read_from_the_source_never_run():
    assert commands.literal_revert_ids("LU.revert(3)") == {3}
    assert commands.literal_revert_ids(" FD.revert([3, 4])\n") == {3, 4}
    assert commands.literal_revert_ids("UpdateManager.revert_update(7)") == {7}
    for src in ("LU.revert(x)", "LU.revert(3); LU.apply(3)", "LU.apply(3)", "LU.revert(True)",
                "LU.revert('3')", "print(LU.revert(3))", "LU.revert(3, 4)", "LU.revert("):
        assert commands.literal_revert_ids(src) == set(), src


def test_a_new_controller_learns_definitions_from_a_hello():
    state = fleet.DesiredState()
    sel = fleet.Selector(instances=["h/1/10"], programs=["prog-a"])
    hello = {"definitions": [{"seq": "old:1", "src": "FP.profile('m')", "filename": "<controller>",
                              "base": 4, "used": 2, "define": {"selector": sel.to_json(),
                                                               "sticky": False}}]}
    state.learn(W1, hello, {4: "applied", 5: "reverted"}, {})
    d = state.definitions["old:1"]
    assert d.active_ids() == [4] and d.inactive == {5: "reverted"}
    msg, _ = state.plan(W2, {}, set())
    assert msg["run"][0]["src"] == "FP.profile('m')" and msg["run"][0]["skip"] == [5]


def test_deploy_refuses_inactive_ids():
    state = _state_with(("s1", 1, 1, [1]), ("s2", 2, 1, []))
    try:
        state.deploy([1, 2, 7], [OTHER])
    except ValueError as e:
        assert "not an active update: 2, 7" in str(e)
    else:
        raise AssertionError("deploy accepted inactive ids")
    state.deploy([1], [OTHER])
    assert state.plan(OTHER, {}, set())[0]["run"][0]["seq"] == "s1"
