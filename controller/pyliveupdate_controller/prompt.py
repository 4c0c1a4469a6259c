"""The interactive line editor of pylu-controller (prompt_toolkit).

Live output and events are printed *above* the prompt: the line being typed is redrawn
below them, never broken. Enter runs the statement once it is complete (as in the Python
console: a compound statement ends with a blank line), else it opens a continuation
line. History is kept across sessions (0600). Tab completes names from the selected
processes, controller commands, and file names inside patch('...').
"""
import codeop
import os
import re

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.key_binding.bindings.completion import generate_completions
from prompt_toolkit.patch_stdout import patch_stdout

_PATCH_ARG = re.compile(r"""patch\(\s*(['"])([^'"]*)$""")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*$")


def is_complete(text):
    """Whether Enter should run `text`, as in the Python console: a statement that
    compiles, or any input whose last line is blank (a compound statement's end)."""
    lines = text.split("\n")
    if not text.strip() or (len(lines) > 1 and not lines[-1].strip()):
        return True
    try:
        complete = codeop.compile_command(text, "<controller>", "single") is not None
    except (SyntaxError, ValueError, OverflowError):
        return True   # let the target report the error the usual way
    # An indented block stays open until a blank line.
    return complete and not (len(lines) > 1 and lines[-1].startswith((" ", "\t")))


class ControllerCompleter(Completer):
    def __init__(self, server, local_names):
        self.server = server
        self.local_names = local_names
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document, complete_event):
        before = document.text_before_cursor
        quoted = _PATCH_ARG.search(before)
        if quoted:
            inner = Document(quoted.group(2), len(quoted.group(2)))
            yield from self.paths.get_completions(inner, complete_event)
            return
        match = _NAME.search(before)
        if not match:
            return
        word = match.group(0)
        try:
            names = self.server.complete(word)
        except Exception:  # noqa: BLE001 - completion never breaks the console
            names = []
        if "." not in word:
            names = sorted(set(names) | {n for n in self.local_names if n.startswith(word)})
        for name in names:
            yield Completion(name, start_position=-len(word))


def _bindings():
    kb = KeyBindings()

    @kb.add("enter")
    def _(event):
        buf = event.current_buffer
        if is_complete(buf.text):
            buf.validate_and_handle()
        else:
            indent = re.match(r"[ \t]*", buf.document.current_line).group(0)
            if buf.document.current_line.rstrip().endswith(":"):
                indent += "    "
            buf.insert_text("\n" + indent)

    @kb.add("tab")
    def _(event):
        # Indentation inside a block, completion elsewhere (a multi-line buffer would
        # otherwise take Tab as text).
        before = event.current_buffer.document.current_line_before_cursor
        if not before.strip():
            event.current_buffer.insert_text("    ")
        else:
            generate_completions(event)

    return kb


def make_session(server, local_names, history_path):
    try:
        os.makedirs(os.path.dirname(history_path), mode=0o700, exist_ok=True)
        if not os.path.exists(history_path):
            os.close(os.open(history_path, os.O_WRONLY | os.O_CREAT, 0o600))
        history = FileHistory(history_path)
    except OSError:
        history = None
    return PromptSession(history=history, multiline=True, key_bindings=_bindings(),
                         completer=ControllerCompleter(server, local_names),
                         complete_while_typing=False,
                         prompt_continuation=lambda width, line, soft: "... ")


def interact(console, history_path, banner):
    """The read-run loop. Returns at EOF (Ctrl-D) or exit."""
    session = make_session(console.server, console.local_names, history_path)
    with patch_stdout(raw=True):
        import sys
        console.out = sys.stdout       # prints from server threads go above the prompt
        console.write_lines([banner])
        while True:
            try:
                src = session.prompt(">>> ")
            except KeyboardInterrupt:
                continue               # Ctrl-C at the prompt clears the line
            except EOFError:
                return
            try:
                console.execute(src)
            except EOFError:
                return
            except KeyboardInterrupt:
                console.event("interrupted")
