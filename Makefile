# Two set-up commands: `make demo` (the main job) and `make test`. Each creates .venv when absent and
# installs the project (editable) with the extras it needs; running them again installs nothing new.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_OUT ?= demo-output

.PHONY: demo node-demo test test-box bench box-kit pi-check pi-kit litert-matrix install clean translations

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras, remade when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(subst +,$(comma),$*)]"
	touch $@

comma := ,

install: $(VENV)/.installed-train+jax+dev+dicom

# Everything, each test once: the box's tests (tests/edge) in the box's own environment (test-box), the rest here
# with TensorFlow and JAX, the box's tests that need a model trained here included.
test: test-box $(VENV)/.installed-train+jax+dev+dicom
	$(BIN)/python -m pytest -m "not box or trains"

# The box's tests where only the box's packages and the test tools are installed: `import tensorflow` fails there.
BOX_VENV ?= .venv-box
$(BOX_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BOX_VENV)
	$(BOX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BOX_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	touch $@

test-box: $(BOX_VENV)/.installed
	@! $(BOX_VENV)/bin/python -c "import tensorflow" 2>/dev/null || \
		{ echo "$(BOX_VENV) has TensorFlow: the box's tests must run without it"; exit 1; }
	$(BOX_VENV)/bin/python -m pytest tests/edge

demo: $(VENV)/.installed-train+dicom
	OUT=$(DEMO_OUT) BIN=$(BIN) bash scripts/demo.sh

# The clinic node on this machine, on loopback, with the demo's bundle (made first when absent): DICOM images sent
# by storescu, the screen and its login printed; Ctrl-C stops it (scripts/node_demo.sh). Needs dcmtk.
node-demo: $(VENV)/.installed-train+dicom
	OUT=$(DEMO_OUT) BIN=$(BIN) bash scripts/node_demo.sh

bench: $(VENV)/.installed-train+dev+dicom
	$(BIN)/python -m benchmarks.run_all --json bench-output.json

# The offline installer for clinic boxes (box-kit/: wheels for Raspberry Pi OS 64-bit and x86_64 Linux, and
# install.sh); copy it to the box and run `sh box-kit/install.sh` there (docs/box.md).
box-kit: $(BIN)/python
	BIN=$(BIN) bash scripts/box_kit.sh

# Not part of `make test`: builds an arm64 Debian root once (about 5 minutes), needs root; trains a small
# tiny run for the kit (about a minute).
pi-check: $(VENV)/.installed-train+dev+dicom
	BIN=$(BIN) bash scripts/pi_check.sh

# The same check for a real Raspberry Pi: a folder to copy there and run (`sh run-on-pi.sh`).
pi-kit: $(VENV)/.installed-train+dev+dicom
	BIN=$(BIN) bash scripts/pi_kit.sh

# Every published LiteRT version on the emulated Pi, against the probe's x86_64 answers: when the pin can move.
litert-matrix: $(VENV)/.installed-train+dev+dicom
	BIN=$(BIN) bash scripts/litert_matrix.sh

clean:
	rm -rf $(DEMO_OUT) bench-output build dist pi-kit box-kit

# The message catalogues (docs/languages.md): extract every message of the code and the templates into
# edge/cxr_edge/locale/cxr_edge.pot, merge it into each language's .po (new messages arrive untranslated, and
# tests/edge/test_languages.py fails until they are translated), and compile the .mo files that ship in the wheel.
LOCALE := edge/cxr_edge/locale
translations: $(BOX_VENV)/.installed
	cd edge/cxr_edge && ../../$(BOX_VENV)/bin/pybabel extract -F locale/babel.cfg -k N_ --add-location=file \
		--sort-by-file --project=cxr-edge --copyright-holder="cxr-edge authors" --msgid-bugs-address="" \
		-o locale/cxr_edge.pot . > /dev/null
	$(BOX_VENV)/bin/pybabel update -i $(LOCALE)/cxr_edge.pot -d $(LOCALE) -D cxr_edge --no-fuzzy-matching --ignore-obsolete \
		--ignore-pot-creation-date
	$(BOX_VENV)/bin/pybabel compile -d $(LOCALE) -D cxr_edge --statistics
