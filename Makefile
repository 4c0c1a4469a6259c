# The developer manual. Every target goes through ./dev, which sets up what it needs.
.PHONY: help demo test test-quick asan lint bench clean fuzz soak wheel

help:
	@echo "make demo        the main job: a live session against examples/"
	@echo "make test        the whole suite: 3.12, 3.13, ASan+UBSan, TSan ring test"
	@echo "make test-quick  the unit tests (tests/unit) once, on one CPython"
	@echo "make asan        the whole suite once under AddressSanitizer + UBSan"
	@echo "make lint        ruff on the Python tree (the C builds with -Werror)"
	@echo "make bench       the benchmark tables (bench/results/latest.md)"
	@echo "make fuzz        coverage-guided fuzzing (atheris), FUZZ_SECONDS per target (default 600)"
	@echo "make soak        the memory and recording soak tests, long variants (SOAK_SCALE=10)"
	@echo "make wheel       the sdist and a manylinux wheel per CPython found, into dist/"
	@echo "make clean       remove build products and virtualenvs"

demo:
	./dev demo

test:
	./dev test

test-quick:
	./dev test --quick

asan:
	./dev test --asan

lint:
	./dev lint

bench:
	./dev bench

wheel:
	./dev wheel

clean:
	rm -rf build dist .venv *.egg-info pyliveupdate/*.so

FUZZ_SECONDS ?= 600
SOAK_SCALE ?= 10

fuzz:
	PY=$$(./dev env) && $$PY -m pip install -q -e ".[fuzz]" && \
	for t in protocol reader; do \
		$$PY tests/fuzz/run_atheris.py $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

soak:
	PY=$$(./dev env) && PYLU_SOAK_SCALE=$(SOAK_SCALE) $$PY -m pytest -q -p no:cacheprovider \
		-o timeout=3600 tests/test_hardening_memory.py
