"""The main demo (`./dev demo`): a whole pyliveupdate session against a live web service.

It starts examples/webservice.py (a parent and two forked workers, with its own client
load), attaches a controller to all three processes, then profiles, debugs, hot-patches
a bug, reverts, processes the logs and shows where the reports are. Every command is
printed as you would type it into pylu-controller.
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from pyliveupdate_controller import repl, server  # noqa: E402

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def line_of(path, text):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise SystemExit("demo: %r not found in %s" % (text, path))


class Demo:
    def __init__(self, pause):
        self.pause = pause
        self.workdir = tempfile.mkdtemp(prefix="pylu-demo-")
        self.logdir = os.path.join(self.workdir, "logs")
        os.mkdir(self.logdir, 0o700)
        token = secrets.token_hex(24)
        self.console = repl.Console(None)
        self.server = server.Server("127.0.0.1", free_port(), token=token,
                                    on_output=self.console.stream_line,
                                    on_event=self.console.event).start()
        self.console.server = self.server
        self.port = free_port()
        env = dict(os.environ, PYLU_CONTROLLER="127.0.0.1:%d" % self.server.port,
                   PYLU_TOKEN=token, PYLU_LOG_DIR=self.logdir, PYTHONUNBUFFERED="1")
        self.service_path = os.path.join(HERE, "webservice.py")
        self.service = subprocess.Popen(
            [sys.executable, self.service_path, "--port", str(self.port), "--workers", "2",
             "--load", "3"], env=env, stderr=subprocess.DEVNULL)

    def step(self, title):
        print("\n%s== %s%s" % (BOLD, title, RESET), flush=True)

    def say(self, text):
        print("%s%s%s" % (DIM, text, RESET), flush=True)

    def run(self, command, wait=0.0):
        print("%s>>> %s%s" % (BOLD, command, RESET), flush=True)
        ok = self.console.execute(command)
        time.sleep(wait * self.pause)
        return ok

    def quote(self, qty):
        url = "http://127.0.0.1:%d/quote?item=1&qty=%d" % (self.port, qty)
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
        print("  GET /quote?item=1&qty=%d -> subtotal %.2f, total %.2f"
              % (qty, body["subtotal"], body["total"]), flush=True)
        return body

    def main(self):
        self.step("1. A running service: a parent and two forked workers, each with a stub")
        self.say("examples/webservice.py runs UpdateStub().start() before forking; every "
                 "worker dials the controller on its own.")
        if not self.server.wait_for(3, 30):
            raise SystemExit("demo: the service's processes did not connect")
        self.run("procs()")

        self.step("2. Profile every function of the service while it serves traffic")
        self.run("FP.profile('__main__.**')", wait=3)
        self.run("FP.top(8)")

        self.step("3. A customer reports wrong prices for big orders")
        self.quote(10)
        self.quote(60)
        self.say("60 kettles at 24.50 with 15% off should cost 1249.50 before tax.")
        worker = self.server.processes()[-1].pid
        self.run("use(%d)" % worker)
        self.run("show('__main__.quote')")
        self.run("use('all')")
        first, last = (line_of(self.service_path, "discount = bulk_discount(qty)"),
                       line_of(self.service_path, "tax = subtotal * TAX_RATE"))
        self.run("LP.profile('__main__.quote', list(range(%d, %d)))" % (first, last + 1), wait=2)
        self.run("LP.show()")

        self.step("4. Watch quote() for big orders only, for 3 seconds, at most 4 lines/s")
        self.run("LD.debug('__main__.quote', [%d, %d], condition='qty >= 50', ttl=3, rate=4)"
                 % (line_of(self.service_path, "subtotal = unit * qty"),
                    line_of(self.service_path, "subtotal = subtotal * (1 - discount)")), wait=4)
        self.say("The discount is applied twice: the subtotal shrinks again on the second line.")

        self.step("5. Hot-patch the bug in all three processes, without a restart")
        self.run("patch(%r)" % os.path.relpath(os.path.join(HERE, "fix_discount.py")), wait=0.5)
        for _ in range(3):
            self.quote(60)
        self.run("LU.ls()")

        self.step("6. Revert the patch (any update can be reverted, in any order) and re-apply it")
        patch_id = self.server.next_id - 1
        self.run("LU.revert(%d)" % patch_id)
        self.quote(60)
        self.run("LU.apply(%d)" % patch_id)
        self.quote(60)

        self.step("7. Stop the service and process the logs")
        self.service.send_signal(signal.SIGTERM)
        self.service.wait(20)
        time.sleep(0.2)
        self.process_logs()

    def process_logs(self):
        outdir = os.path.join(self.workdir, "reports")
        os.mkdir(outdir)
        tool = shutil.which("pylu-processlogs") or os.path.join(os.path.dirname(sys.executable),
                                                                "pylu-processlogs")
        if not os.path.exists(tool):
            self.say("pylu-processlogs is not installed; the logs are in %s" % self.logdir)
            return
        cmd = [tool, "-i", self.logdir, "-o", outdir, "--top", "6"]
        print("%s$ %s%s" % (BOLD, " ".join(cmd), RESET), flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        print(done.stdout.rstrip() or done.stderr.rstrip())
        reports = sorted(os.listdir(outdir))
        summary = [r for r in reports if r.endswith(".summary")]
        if summary:
            with open(os.path.join(outdir, summary[0])) as f:
                text = f.read()
            # Show the busiest process: the one whose log holds the most events.
            sections = text.split("\n== ")[1:]
            busiest = max(sections, key=lambda s: int((re.search(r"events: (\d+)", s)
                                                      or re.search("()", "0")).group(1) or 0),
                          default="")
            print("== " + "\n".join(busiest.splitlines()[:24]))
        print("\nLogs:    %s (%d files)" % (self.logdir, len(os.listdir(self.logdir))))
        for r in reports:
            print("Report:  %s" % os.path.join(outdir, r))
        svg = [r for r in reports if r.endswith(".svg")]
        if svg:
            print("%sFlamegraph: open %s in a browser%s" % (BOLD, os.path.join(outdir, svg[0]),
                                                           RESET))

    def close(self):
        if self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(10)
            except subprocess.TimeoutExpired:
                self.service.kill()
        self.server.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fast", action="store_true", help="shorter pauses (for tests)")
    args = p.parse_args()
    demo = Demo(pause=0.4 if args.fast else 1.0)
    start = time.monotonic()
    try:
        demo.main()
    finally:
        demo.close()
    print("\ndemo finished in %.0f s; everything it wrote is under %s"
          % (time.monotonic() - start, demo.workdir))


if __name__ == "__main__":
    main()
