# asrkit: `make demo` sets up and runs the digits recipe end to end; `make test` runs the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ASRKIT := $(VENV)/bin/asrkit
EXP := exp/digits
DATA := data/digits

.PHONY: setup test test-all demo digits phonemes bench bench-zoo bench-speakers clean help

help:
	@echo "make demo      set up, then prepare/train/decode/align/score the digits recipe (embedded FSDD data)"
	@echo "make test      run the test suite (sets up first)"
	@echo "make digits    the digits recipe (same as demo)"
	@echo "make phonemes  phoneme recognition (HW3P2 task) on CMU AN4, speakers held out (~15 min on 2 cores)"
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

# AN4: $(AN4) if set, else $ASRKIT_DATA/an4, else ../shared/data/an4/an4
AN4 ?= $(firstword $(wildcard $(ASRKIT_DATA)/an4 ../shared/data/an4/an4))
PH_SET := $(if $(AN4),--set data.root=$(AN4))

phonemes: setup
	$(ASRKIT) prepare recipes/phonemes.yaml $(PH_SET)
	$(ASRKIT) train recipes/phonemes.yaml $(PH_SET)
	@for s in test an4_test; do \
	  if [ -f data/phonemes/$$s.jsonl ]; then \
	    $(ASRKIT) decode --model exp/phonemes/best.pt --beam 10 --output exp/phonemes/$$s.hyp \
	      --submission exp/phonemes/$$s.submission.csv data/phonemes/$$s.jsonl && \
	    echo "== $$s: speakers never heard in training, beam 10 (WER = PER over phonemes; Mean dist = the Kaggle metric) ==" && \
	    $(ASRKIT) score --ref data/phonemes/$$s.jsonl --hyp exp/phonemes/$$s.hyp --details 3 || exit 1; \
	  fi; \
	done

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
