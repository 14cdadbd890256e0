# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
PIVENV ?= .venv-pi
BIN     = $(VENV)/bin
DEMO_OUT ?= demo-out

.PHONY: demo test test-device-pi viewfinder bench bench-report models clean

# Debian's python3 ships without ensurepip (it is in python3-venv): install it when we can.
define make-venv
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3-venv (Debian's python3 has no ensurepip)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else echo "error: $(PYTHON) cannot create a venv: run 'sudo apt-get install python3-venv'" >&2; exit 2; fi; }
	$(PYTHON) -m venv $(1)
endef

$(BIN)/.device-installed: setup.cfg pyproject.toml
	$(call make-venv,$(VENV))
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[device,sim]'
	touch $@

$(BIN)/.test-installed: $(BIN)/.device-installed
	$(BIN)/pip install -q -e '.[device,sim,train,test]'
	touch $@

demo: $(BIN)/.device-installed
	$(BIN)/python -m device.app.demo --out $(DEMO_OUT)

test: $(BIN)/.test-installed
	$(BIN)/python -m pytest -q

# The device tests again on the Raspberry Pi OS Bookworm stack (numpy 1.x, OpenCV 4.11).
$(PIVENV)/bin/.installed: setup.cfg constraints/bookworm-pi.txt
	$(call make-venv,$(PIVENV))
	$(PIVENV)/bin/pip install -q --upgrade pip
	$(PIVENV)/bin/pip install -q -c constraints/bookworm-pi.txt -e '.[device,sim,test]'
	touch $@

test-device-pi: $(PIVENV)/bin/.installed
	$(PIVENV)/bin/python -c "import numpy; assert numpy.__version__.startswith('1.'), numpy.__version__; print('numpy', numpy.__version__)"
	$(PIVENV)/bin/python -m pytest -q tests/device

# The web viewfinder on the simulated camera (paced like a 30 fps camera) and its focus
# motor: open http://127.0.0.1:8000/ and stop with Ctrl-C.
viewfinder: $(BIN)/.device-installed
	$(BIN)/focus-assist run --source sim:fps=30 --motor sim --web 127.0.0.1:8000

bench: $(BIN)/.test-installed
	$(BIN)/python bench/bench_scoring.py
	$(BIN)/python bench/bench_overlay.py
	$(BIN)/python bench/bench_inference.py
	$(BIN)/python bench/bench_real_sweeps.py
	$(BIN)/python bench/bench_autofocus.py
	$(BIN)/python bench/bench_capture.py
	$(BIN)/python bench/bench_defects.py

# One table (loop stages, autofocus, memory, start-up) to stdout and performance-report.md
# (docs/performance.md gives it); about 5 minutes on 2 cores.
bench-report: $(BIN)/.test-installed
	$(BIN)/python bench/bench_report.py --md performance-report.md

# Rebuild the shipped models from the default data (about 25 minutes on 2 cores).
models: $(BIN)/.test-installed
	$(BIN)/focus-train focus
	$(BIN)/focus-train defects
	$(BIN)/focus-convert runs/focus --preset int8 --out models/focus.tflite
	$(BIN)/focus-convert runs/defects --preset int8 --out models/defects.tflite

clean:
	rm -rf $(VENV) $(PIVENV) $(DEMO_OUT) build *.egg-info
