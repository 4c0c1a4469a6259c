/* compat.h — every CPython version difference the engine cares about, in one place. */
#ifndef PYLU_COMPAT_H
#define PYLU_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#  error "pyliveupdate needs CPython 3.12 or newer (sys.monitoring, PEP 669)"
#endif

/* Py_mod_gil exists from 3.13 (PEP 703); we rely on the GIL for code-state updates. */
#if PY_VERSION_HEX >= 0x030D0000
#  define PYLU_HAVE_MOD_GIL 1
#else
#  define PYLU_HAVE_MOD_GIL 0
#endif

/* The PEP 523 getter/setter keep their underscore names through 3.14; 3.15 adds
 * PyUnstable_InterpreterState_{Get,Set}EvalFrameFunc (gh-141518). */
#if PY_VERSION_HEX >= 0x030F0000
#  define pylu_get_eval_frame PyUnstable_InterpreterState_GetEvalFrameFunc
#  define pylu_set_eval_frame PyUnstable_InterpreterState_SetEvalFrameFunc
#else
#  define pylu_get_eval_frame _PyInterpreterState_GetEvalFrameFunc
#  define pylu_set_eval_frame _PyInterpreterState_SetEvalFrameFunc
#endif

/* 3.13 replaced the frame's prev_instr with instr_ptr (gh-109094): a suspended frame's
 * lasti is one instruction past the one that suspended it (past YIELD_VALUE, past
 * RETURN_GENERATOR), and a frame that has not started yet has lasti 0, not -1. */
#if PY_VERSION_HEX >= 0x030D0000
#  define PYLU_LASTI_PAST_SUSPEND 1
#else
#  define PYLU_LASTI_PAST_SUSPEND 0
#endif

/* 3.13's CALL_ALLOC_AND_ENTER_INIT (the specialized `Cls(...)` call of a class with a
 * plain Python __init__, gh-91095) pushes the __init__ frame inline without checking
 * for a PEP 523 hook, and it specializes while a hook is installed: the hook sees the
 * first call of a site and no later one.  3.14 added the _CHECK_PEP_523 guard to it when
 * it split the instruction into micro-ops (gh-118093); 3.12 has no such instruction. */
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
#  define PYLU_HOOK_MISSES_INLINED_INIT 1
#else
#  define PYLU_HOOK_MISSES_INLINED_INIT 0
#endif

#define PYLU_UNUSED(x) ((void)(x))
#define PYLU_LIKELY(x) __builtin_expect(!!(x), 1)
#define PYLU_UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif
