"""The files pylu-attach shares with the target: launch code, parameters, result.

A private directory (0700, owned by the target's user so it can read the code and
write its answer) holds a copy of `_pyliveupdate_launch.py`, the parameters (the
controller's address and token: removed by the target as soon as it has read them,
or withdrawn by us when we give up) and, later, the target's JSON answer.

The code the target runs binds no name in its ``__main__`` (where both PyRun_SimpleString
and 3.14's sys.remote_exec execute), leaves no file open (a ResourceWarning would land
there too) and lets no exception out (SystemExit would end the program): the launch
module runs in a fresh namespace.
"""
import json
import os
import shutil
import tempfile
import time

import pyliveupdate

LAUNCH_SOURCE = os.path.join(os.path.dirname(os.path.abspath(pyliveupdate.__file__)),
                             "_autostart", "_pyliveupdate_launch.py")
INLINE_TEMPLATE = """\
try:
    (lambda o, n: (exec(compile((lambda fd: (o.read(fd, 1 << 20), o.close(fd))[0])(
        o.open(%(code)r, o.O_RDONLY)), %(code)r, 'exec'), n), n['attach'](%(params)r)))(
        __import__('os'), {'__name__': '_pyliveupdate_launch'})
except BaseException:
    pass
"""


class Handoff:
    def __init__(self, uid=None, gid=None):
        self.dir = tempfile.mkdtemp(prefix="pylu-attach-")
        self._owner = None
        if uid is not None and (uid, gid) != (os.geteuid(), os.getegid()):
            self._owner = (uid, gid)
            os.chown(self.dir, uid, gid)
        self.code_path = os.path.join(self.dir, "launch.py")
        self.params_path = os.path.join(self.dir, "params")
        self.result_path = os.path.join(self.dir, "result.json")
        with open(LAUNCH_SOURCE, "rb") as src:
            self._write(self.code_path, src.read(), 0o600)

    def _write(self, path, data, mode):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        try:
            if self._owner is not None:
                os.fchown(fd, *self._owner)
            os.write(fd, data)
        finally:
            os.close(fd)

    def inline_code(self):
        """Python source that makes the target run the launch module's attach()."""
        return INLINE_TEMPLATE % {"code": self.code_path, "params": self.params_path}

    def write_entry_script(self):
        """The inline code as a file, for sys.remote_exec."""
        path = os.path.join(self.dir, "entry.py")
        self._write(path, self.inline_code().encode(), 0o600)
        return path

    def offer(self, params):
        """Write the parameters the target reads (and deletes) when it runs the code."""
        params = dict(params, result=self.result_path)
        for path in (self.params_path, self.result_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._write(self.params_path, repr(params).encode(), 0o600)

    def withdraw(self):
        """Remove the parameters unless taken: True if the target never took them."""
        try:
            os.unlink(self.params_path)
            return True
        except FileNotFoundError:
            return False

    def taken(self):
        return not os.path.exists(self.params_path)

    def result(self):
        try:
            with open(self.result_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait_result(self, timeout, alive=lambda: True):
        deadline = time.monotonic() + timeout
        while True:
            result = self.result()
            if result is not None or time.monotonic() >= deadline or not alive():
                return result
            time.sleep(0.01)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)
