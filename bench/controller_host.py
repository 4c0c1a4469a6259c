"""A real pylu-controller server for the idle-stub row, in its own process.

    python controller_host.py TOKEN     prints "PORT\n" once listening, serves until
                                        its stdin closes

The bench's children start an UpdateStub that dials it, so "idle" means what it means
in production: stub connected and authenticated, nothing applied. It is a separate
process so its CPU is not charged to the measured program.
"""
import sys


def main(argv):
    from pyliveupdate_controller.server import Server
    server = Server("127.0.0.1", 0, token=argv[1]).start()
    sys.stdout.write("%d\n" % server.port)
    sys.stdout.flush()
    sys.stdin.read()  # until the bench closes our stdin
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
