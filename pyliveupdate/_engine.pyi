"""Typed face of pyliveupdate._engine, the C core every target loads (csrc/module.c).

The offline reader lives in pyliveupdate._reader; LogReader, CallTreeBuilder and
LOG_EVENT_SIZE still resolve here (imported on first use) for callers of the old place.
"""
from types import CodeType, FrameType
from typing import Any, Callable, Final, Iterable, Mapping, Sequence, final

from pyliveupdate._reader import LOG_EVENT_SIZE as LOG_EVENT_SIZE
from pyliveupdate._reader import CallTreeBuilder as CallTreeBuilder
from pyliveupdate._reader import LogReader as LogReader

# ---- kinds (csrc/kinds.h): one definition, exported by both modules ---------------------
from pyliveupdate._reader import EV_CALL as EV_CALL
from pyliveupdate._reader import EV_LINE as EV_LINE
from pyliveupdate._reader import EV_LINE_MARK as EV_LINE_MARK
from pyliveupdate._reader import EV_RESUME as EV_RESUME
from pyliveupdate._reader import EV_RETURN as EV_RETURN
from pyliveupdate._reader import EV_UNWIND as EV_UNWIND
from pyliveupdate._reader import EV_YIELD as EV_YIELD
from pyliveupdate._reader import LOG_FORMAT_VERSION as LOG_FORMAT_VERSION
from pyliveupdate._reader import TEXT_DEBUG as TEXT_DEBUG
from pyliveupdate._reader import TEXT_ENGINE as TEXT_ENGINE
from pyliveupdate._reader import TEXT_HANDLER as TEXT_HANDLER

# ---- recorder (csrc/recorder_py.c; docs/DESIGN.md §2) ------------------------------------
RECORDER_CLOCK: Final[str]   # "tsc" or "monotonic"

def recorder_start(directory: str | bytes, *, ring_slots: int = ..., level: int = ...,
                   flush_ms: int = ..., frame_ms: int = ..., budget: int | str | None = ...,
                   segment_bytes: int = ...) -> str: ...
def recorder_stop() -> None: ...
def recorder_flush() -> None: ...
def recorder_active() -> bool: ...
def recorder_stats() -> dict[str, Any]: ...
def recorder_text(kind: int, text: str, /) -> bool: ...
def recorder_emit(kind: int, code_id: int, line: int, /) -> None: ...
def recorder_describe_code(code_id: int, qualname: str, filename: str, firstlineno: int,
                           module: str, /) -> None: ...
def recorder_bench(n: int, *, rate: float = ..., baseline: bool = ...) -> float: ...
def recorder_live() -> tuple[dict[int, tuple[int, float, float]],
                             dict[tuple[int, int], tuple[int, float]]]: ...
def recorder_live_reset(code_ids: Iterable[int] | None = ...) -> None: ...

# ---- engine (csrc/engine_py.c; pyliveupdate/engine.py is the caller) --------------------
CS_FUNC_RECORDS: Final[int]
CS_HOOK_RECORDS: Final[int]
CS_PY_START: Final[int]
CS_PY_EXIT: Final[int]
CS_PY_YIELD: Final[int]
CS_ARMED: Final[int]
LINE_TIME: Final[int]
LINE_MARK: Final[int]
LINE_DISPATCH: Final[int]
DISPATCH_START: Final[int]
DISPATCH_RETURN: Final[int]
DISPATCH_UNWIND: Final[int]
DISPATCH_YIELD: Final[int]
DISPATCH_LINE: Final[int]

def code_arm(code: CodeType, flags: int, lines: Mapping[int, int] | None,
             dispatch: Callable[..., Any] | None, module: str | None, qualname: str | None,
             gen_start: int, /) -> int: ...
def code_disarm(code: CodeType, /) -> None: ...
def code_state(code: CodeType, /) -> dict[str, Any] | None: ...
def code_reset_counts(code: CodeType, /) -> None: ...
def set_counting(on: bool, /) -> None: ...
def set_callback_mode(mode: str, /) -> None: ...
def armed_codes() -> list[CodeType]: ...
def monitor_stop() -> None: ...
def set_decider(decider: Callable[[CodeType], Any] | None, /) -> int: ...
def function_watcher(on: bool, /) -> None: ...
def frame_hook(install: bool, forward_only: bool = ..., /) -> None: ...
def engine_counters() -> dict[str, Any]: ...

# ---- handler dispatch (csrc/dispatch.c) -------------------------------------------------
MAX_CONSECUTIVE_FAILURES: Final[int]

class HandlerStats:
    """Handler bookkeeping of one update; subclasses define switch_off and _failed."""
    update_id: Final[Any]
    calls: int
    errors: int
    consecutive: int
    skipped: int
    time_ns: int
    gate_until_ns: int
    disabled: bool
    last_error: Any
    disabled_reason: Any
    budget_ns: int | None
    def __init__(self, update_id: Any) -> None: ...

_Pairs = Sequence[tuple[HandlerStats, Callable[..., Any]]]

@final
class Dispatcher:
    """One code's handlers, called as (kind, frame, line, arg)."""
    def __new__(cls, begin: _Pairs, end: _Pairs, before: Mapping[int, _Pairs],
                after: Mapping[int, _Pairs]) -> Dispatcher: ...
    def __call__(self, kind: int, frame: FrameType | None, line: int | None,
                 arg: Any, /) -> None: ...
    @property
    def pending(self) -> dict[FrameType, int]: ...

def frame_vars(frame: FrameType, names: tuple[str, ...], /) -> dict[str, Any]: ...

# The stub's GIL hand-off (handoff.c; docs/DESIGN.md section 6).
def handoff_wait_readable(fd: int, timeout: float | None, lend: bool = ...) -> bool: ...
def handoff_release() -> None: ...
def handoff_stats() -> dict[str, Any]: ...
