# The developer manual. Every target goes through ./dev, which sets up what it needs.
.PHONY: help demo test test-quick asan bench clean

help:
	@echo "make demo        the main job: a live session against examples/"
	@echo "make test        the whole suite: 3.12, 3.13, ASan+UBSan, TSan ring test"
	@echo "make test-quick  the suite once, on one CPython"
	@echo "make bench       the benchmark tables (bench/results/latest.md)"
	@echo "make clean       remove build products and virtualenvs"

demo:
	./dev demo

test:
	./dev test

test-quick:
	./dev test --quick

bench:
	./dev bench

clean:
	rm -rf build .venv *.egg-info pyliveupdate/*.so
