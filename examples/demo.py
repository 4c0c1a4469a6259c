"""The main demo; grows into a full controller session as the parts land."""
import sys

print("pyliveupdate demo: the engine is being built; see README.md", file=sys.stderr)
