# asrkit: `make demo` sets up and runs the digits recipe end to end; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ASRKIT := $(VENV)/bin/asrkit
EXP := exp/digits
DATA := data/digits

# Speech Commands: SC_ROOT (default $ASRKIT_DATA/speech_commands, else the shared v0.01 sample); SC_SET adds --set overrides
SC_ROOT ?= $(firstword $(wildcard $(ASRKIT_DATA)/speech_commands) $(wildcard ../shared/data/speech_commands/speech_commands_v0.01))
SC_SET ?=
SC_EXP := exp/speech_commands
SC_DATA := data/speech_commands

.PHONY: setup test test-all demo digits speech-commands bench bench-zoo bench-speakers clean help

help:
	@echo "make demo      set up, then prepare/train/decode/align/score the digits recipe (embedded FSDD data)"
	@echo "make test      run the test suite (sets up first)"
	@echo "make digits    the digits recipe (same as demo)"
	@echo "make speech-commands  keyword classification on Speech Commands (SC_ROOT=..., default \$$ASRKIT_DATA/speech_commands or the shared v0.01 sample)"
	@echo "make bench     decode real-time factor -> bench/results/decode.json; training throughput -> bench/results/train.json"
	@echo "make bench-zoo every zoo entry trained on digits (~25 min on 2 cores) -> bench/results/zoo.json"
	@echo "make bench-speakers  leave-one-speaker-out digits (4 trainings, ~1 h on 2 cores) -> bench/results/speakers.json"
	@echo "make test-all  the test suite including slow checks"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(PY) -m uv pip install --python $(PY) -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

demo: digits

digits: setup
	$(ASRKIT) prepare recipes/digits.yaml
	$(ASRKIT) train recipes/digits.yaml
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --output $(EXP)/test.open.hyp $(DATA)/test.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --lexicon $(DATA)/train.jsonl --output $(EXP)/test.hyp $(DATA)/test.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --lexicon $(DATA)/train.jsonl --output $(EXP)/test_isolated.hyp $(DATA)/test_isolated.jsonl
	$(ASRKIT) align --model $(EXP)/best.pt --out $(EXP)/align --limit 5 $(DATA)/test.jsonl
	@echo "== connected-digit test set, beam 10, open vocabulary =="
	$(ASRKIT) score --ref $(DATA)/test.jsonl --hyp $(EXP)/test.open.hyp
	@echo "== connected-digit test set, beam 10, lexicon of the training words =="
	$(ASRKIT) score --ref $(DATA)/test.jsonl --hyp $(EXP)/test.hyp --details 3
	@echo "== isolated-digit test recordings, beam 10, lexicon =="
	$(ASRKIT) score --ref $(DATA)/test_isolated.jsonl --hyp $(EXP)/test_isolated.hyp

speech-commands: setup
	@test -n "$(SC_ROOT)" || { echo "no Speech Commands corpus: set SC_ROOT=/path/to/speech_commands_v0.02 (or ASRKIT_DATA), or run $(ASRKIT) prepare recipes/speech_commands.yaml --download"; exit 2; }
	$(ASRKIT) prepare recipes/speech_commands.yaml --set data.root=$(SC_ROOT) $(SC_SET)
	$(ASRKIT) train recipes/speech_commands.yaml $(SC_SET)
	$(ASRKIT) decode --model $(SC_EXP)/best.pt --output $(SC_EXP)/test.hyp $(SC_DATA)/test.jsonl
	@echo "== official test clips: accuracy (Acc) and the confusion matrix in $(SC_EXP)/confusion.png =="
	$(ASRKIT) score --ref $(SC_DATA)/test.jsonl --hyp $(SC_EXP)/test.hyp --confusion $(SC_EXP)/confusion.png

bench: setup
	@test -f $(EXP)/best.pt || $(MAKE) digits
	$(PY) bench/decode_rtf.py --lexicon $(DATA)/train.jsonl
	$(PY) bench/train_throughput.py

bench-zoo: setup
	$(PY) bench/zoo.py

bench-speakers: setup
	$(PY) bench/speakers.py

clean:
	rm -rf data exp
