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
# TINY=1: every recipe target runs on the same data with a small model and few epochs, into <recipe>-tiny dirs (a minute or two)
TINY ?=
T := $(if $(TINY),-tiny)
SC_EXP := exp/speech_commands$(T)
SC_DATA := data/speech_commands$(T)
SC_SET += $(if $(TINY),--set data.out_dir=$(SC_DATA) --set train.exp_dir=$(SC_EXP) --set model.hidden=64 --set model.layers=1 --set train.epochs=3 --set data.speech_commands.augment_copies=0)

.PHONY: setup tts-engines test test-all fuzz demo digits echo librispeech librispeech-tiny phonemes speech-commands bench bench-zoo bench-speakers bench-stream bench-librispeech clean help

help:
	@echo "make demo      set up, then prepare/train/decode/align/score the digits recipe (embedded FSDD data)"
	@echo "make test      run the test suite (sets up first)"
	@echo "make digits    the digits recipe (same as demo)"
	@echo "make phonemes  phoneme recognition (HW3P2 task) on CMU AN4, speakers held out (~15 min on 2 cores)"
	@echo "make speech-commands  keyword classification on Speech Commands (SC_ROOT=..., default \$$ASRKIT_DATA/speech_commands or the shared v0.01 sample)"
	@echo "make bench     beam search vs pyctcdecode/flashlight -> bench/results/beam.json; decode real-time factor -> decode.json; training throughput -> train.json"
	@echo "make bench-zoo every zoo entry trained on digits (~25 min on 2 cores) -> bench/results/zoo.json"
	@echo "make bench-stream  train the streamable digits model (unidirectional GRU, ~10 min) and stream its test set -> bench/results/stream.json"
	@echo "make bench-speakers  leave-one-speaker-out digits (4 folds, each prepare + train + decode, ~25 min on 2 cores) -> bench/results/speakers.json"
	@echo "make bench-scale  prepare + 75 s of training on 2, 8 and 32 h LibriSpeech-layout corpora (and 2 torchrun ranks): peak private memory, speed, growth per hour; prepare --jobs 1 vs N and a killed, resumed prepare -> bench/results/scale.json"
	@echo "make gpu-check    on a GPU machine: the CUDA tests, the LibriSpeech training step in fp32/bf16/fp16, decoding and alignment GPU vs CPU (< 8 min) -> bench/results/gpu_check.json"
	@echo "make echo      the GRU echo memory task, fixed and variable delay (generated data, ~2 min each)"
	@echo "make librispeech  the LibriSpeech recipe (LIBRISPEECH=folder holding LibriSpeech/, LM=word n-gram ARPA/binary to add LM decoding; needs a GPU to be practical)"
	@echo "make librispeech-tiny  the LibriSpeech recipe end to end on the 15 real sample utterances in ../shared/data (smoke run)"
	@echo "make bench-librispeech  one training step of the LibriSpeech model, projected to train-clean-100 -> bench/results/librispeech_step.json"
	@echo "make test-all  the test suite including slow checks"
	@echo "make fuzz      the long fuzz pass over the readers (hostile audio, text, manifests, recipes, checkpoints; minutes)"
	@echo "TINY=1         with a recipe target (echo, phonemes, speech-commands): a small model and few epochs, a minute or two"

setup: $(VENV)/.installed tts-engines

TTS_PACKAGES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
# the digits recipe's synthetic voices: installed with apt where this machine allows it; elsewhere the recipe runs
# without them and says so in one line
tts-engines:
	@if command -v espeak-ng >/dev/null && command -v flite >/dev/null && command -v festival >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing the TTS engines for the digits recipe's synthetic voices (apt-get: $(TTS_PACKAGES))"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TTS_PACKAGES) >/dev/null) \
	    || echo "note: apt-get could not install the TTS engines; the digits recipe will train without synthetic voices"; \
	else echo "note: no TTS engines (espeak-ng, flite, festival) and no root apt-get: the digits recipe trains without synthetic voices (install: $(TTS_PACKAGES))"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(PY) -m uv pip install --python $(PY) -q --compile-bytecode -e '.[dev]'  # .pyc files now: with PYTHONDONTWRITEBYTECODE set, every process would compile torch again (~6 s each)
	$(PY) -c "from asrkit.decode.beam import compile_kernels; compile_kernels(); from asrkit.models.gru_kernel import compile_kernels; compile_kernels()"  # numba's cache: no process pays the compile later
	touch $@

test: setup
	$(PY) -m ruff check asrkit tests bench
	$(PY) -m ruff format --check asrkit tests bench
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

fuzz: setup
	$(PY) -m pytest -q -m fuzz tests/robustness

demo: digits

digits: setup
	$(ASRKIT) prepare recipes/digits.yaml
	$(ASRKIT) train recipes/digits.yaml
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --output $(EXP)/test.open.hyp $(DATA)/test.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --lexicon $(DATA)/train.jsonl --output $(EXP)/test.hyp $(DATA)/test.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --lexicon $(DATA)/train.jsonl --output $(EXP)/test_isolated.hyp $(DATA)/test_isolated.jsonl
	$(ASRKIT) lm build $(DATA)/train.jsonl -o $(EXP)/lm.arpa --order 3
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --lm $(EXP)/lm.arpa --alpha 1.0 --output $(EXP)/test.lm.hyp $(DATA)/test.jsonl
	$(ASRKIT) align --model $(EXP)/best.pt --out $(EXP)/align --limit 5 $(DATA)/test.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --output $(EXP)/test_isolated.open.hyp $(DATA)/test_isolated.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --output $(EXP)/test_unseen.hyp $(DATA)/test_unseen.jsonl
	$(ASRKIT) decode --model $(EXP)/best.pt --beam 10 --vtln --output $(EXP)/test_unseen.vtln.hyp $(DATA)/test_unseen.jsonl
	@echo "== connected-digit test set, beam 10, lexicon of the training words: the worst utterances =="
	$(ASRKIT) score --ref $(DATA)/test.jsonl --hyp $(EXP)/test.hyp --details 3
	@echo "== connected digits (test split): open vocabulary, word trigram LM of the training texts (alpha 1.0), lexicon =="
	$(ASRKIT) score --ref $(DATA)/test.jsonl --hyp $(EXP)/test.open.hyp --hyp $(EXP)/test.lm.hyp --hyp $(EXP)/test.hyp
	@echo "== isolated-digit test recordings: open vocabulary, lexicon =="
	$(ASRKIT) score --ref $(DATA)/test_isolated.jsonl --hyp $(EXP)/test_isolated.open.hyp --hyp $(EXP)/test_isolated.hyp
	@echo "== voices no training source contains (Speech Commands testing-list clips): open vocabulary, and with --vtln =="
	$(ASRKIT) score --ref $(DATA)/test_unseen.jsonl --hyp $(EXP)/test_unseen.hyp --hyp $(EXP)/test_unseen.vtln.hyp

ECHO_TINY_SETS = --set data.out_dir=data/$$r$(T) --set train.exp_dir=exp/$$r$(T) --set train.epochs=2 \
  --set 'data.echo.per_split={train: 4000, dev: 200, test: 500}'
ECHO_TINY = $(if $(TINY),$(ECHO_TINY_SETS))
echo: setup
	@for r in echo echo_variable; do \
	  $(ASRKIT) prepare recipes/$$r.yaml $(ECHO_TINY) && \
	  /usr/bin/time -f "$$r: training wall time %e s" $(ASRKIT) train recipes/$$r.yaml $(ECHO_TINY) && \
	  $(ASRKIT) decode --model exp/$$r$(T)/best.pt --output exp/$$r$(T)/test.hyp data/$$r$(T)/test.jsonl && \
	  echo "== $$r: fresh random test strings ==" && \
	  $(ASRKIT) score --ref data/$$r$(T)/test.jsonl --hyp exp/$$r$(T)/test.hyp --frames || exit 1; \
	done

LIBRISPEECH ?= $(or $(ASRKIT_DATA),$(HOME)/.cache/asrkit)/librispeech
LS_SETS := --set data.root=$(LIBRISPEECH)
LM ?=
LM_ALPHA ?= 0.5
LM_BETA ?= 1.0
librispeech: setup
	$(ASRKIT) prepare recipes/librispeech.yaml $(LS_SETS)
	$(ASRKIT) train recipes/librispeech.yaml $(LS_SETS)
	@for beam in 1 10; do \
	  for s in dev test; do \
	    $(ASRKIT) decode --model exp/librispeech/averaged.pt --beam $$beam --output exp/librispeech/$$s.beam$$beam.hyp data/librispeech/$$s.jsonl && \
	    echo "== $$s, beam $$beam ==" && $(ASRKIT) score --ref data/librispeech/$$s.jsonl --hyp exp/librispeech/$$s.beam$$beam.hyp || exit 1; \
	  done; \
	done
	@if [ -n "$(LM)" ]; then for s in dev test; do \
	  $(ASRKIT) decode --model exp/librispeech/averaged.pt --beam 50 --lm $(LM) --alpha $(LM_ALPHA) --beta $(LM_BETA) --output exp/librispeech/$$s.lm.hyp data/librispeech/$$s.jsonl && \
	  echo "== $$s, beam 50 + word LM $(LM) (alpha $(LM_ALPHA), beta $(LM_BETA)) ==" && $(ASRKIT) score --ref data/librispeech/$$s.jsonl --hyp exp/librispeech/$$s.lm.hyp || exit 1; \
	done; else echo "(no LM=...: word-LM decoding skipped; e.g. LM=3-gram.pruned.1e-7.arpa from openslr.org/11)"; fi

# the recipe's pipeline on the real LibriSpeech sample (dev-clean-2 trains, its test-clean utterances are the held-out set): proves the plumbing, not the WER
LS_TINY := --set data.root=../shared/data/librispeech --set data.out_dir=data/librispeech-tiny --set train.exp_dir=exp/librispeech-tiny \
  --set 'data.splits={train: [dev-clean-2], dev: [test-clean]}' --set model.hidden=96 --set model.layers=2 \
  --set model.frontend=stack --set model.subsample=3 --set model.dropout=0 --set features.n_mels=40 --set train.epochs=40 \
  --set train.batch_seconds=7 --set train.lr=0.01 --set train.average=0 --set train.weight_decay=0 --set train.warmup=0.2 \
  --set train.threads=1 --set features.specaugment=null
librispeech-tiny: setup
	$(ASRKIT) prepare recipes/librispeech.yaml $(LS_TINY)
	$(ASRKIT) train recipes/librispeech.yaml $(LS_TINY)
	$(ASRKIT) decode --model exp/librispeech-tiny/last.pt --beam 10 --output exp/librispeech-tiny/train.hyp data/librispeech-tiny/train.jsonl
	$(ASRKIT) decode --model exp/librispeech-tiny/last.pt --beam 10 --output exp/librispeech-tiny/test.hyp data/librispeech-tiny/dev.jsonl
	@echo "== training utterances (fit) =="; $(ASRKIT) score --ref data/librispeech-tiny/train.jsonl --hyp exp/librispeech-tiny/train.hyp
	@echo "== test-clean sample (5 utterances never heard) =="; $(ASRKIT) score --ref data/librispeech-tiny/dev.jsonl --hyp exp/librispeech-tiny/test.hyp

bench-librispeech: setup
	$(PY) bench/librispeech_step.py

# AN4: $(AN4) if set, else $ASRKIT_DATA/an4, else ../shared/data/an4/an4
AN4 ?= $(firstword $(wildcard $(ASRKIT_DATA)/an4 ../shared/data/an4/an4))
PH_DATA := data/phonemes$(T)
PH_EXP := exp/phonemes$(T)
PH_SET := $(if $(AN4),--set data.root=$(AN4)) $(if $(TINY),--set data.out_dir=$(PH_DATA) --set train.exp_dir=$(PH_EXP) --set model.hidden=64 --set model.layers=1 --set train.epochs=4)

phonemes: setup
	$(ASRKIT) prepare recipes/phonemes.yaml $(PH_SET)
	$(ASRKIT) train recipes/phonemes.yaml $(PH_SET)
	@for s in test an4_test; do \
	  if [ -f $(PH_DATA)/$$s.jsonl ]; then \
	    $(ASRKIT) decode --model $(PH_EXP)/best.pt --beam 10 --output $(PH_EXP)/$$s.hyp \
	      --submission $(PH_EXP)/$$s.submission.csv $(PH_DATA)/$$s.jsonl && \
	    echo "== $$s: speakers never heard in training, beam 10 (WER = PER over phonemes; Mean dist = the Kaggle metric) ==" && \
	    $(ASRKIT) score --ref $(PH_DATA)/$$s.jsonl --hyp $(PH_EXP)/$$s.hyp --details 3 || exit 1; \
	  fi; \
	done

speech-commands: setup
	@test -n "$(SC_ROOT)" || { echo "no Speech Commands corpus: set SC_ROOT=/path/to/speech_commands_v0.02 (or ASRKIT_DATA), or run $(ASRKIT) prepare recipes/speech_commands.yaml --download"; exit 2; }
	$(ASRKIT) prepare recipes/speech_commands.yaml --set data.root=$(SC_ROOT) $(SC_SET)
	$(ASRKIT) train recipes/speech_commands.yaml $(SC_SET)
	$(ASRKIT) decode --model $(SC_EXP)/best.pt --output $(SC_EXP)/test.hyp $(SC_DATA)/test.jsonl
	@echo "== official test clips: accuracy (Acc) and the confusion matrix in $(SC_EXP)/confusion.png =="
	$(ASRKIT) score --ref $(SC_DATA)/test.jsonl --hyp $(SC_EXP)/test.hyp --confusion $(SC_EXP)/confusion.png

bench: setup
	$(PY) -m uv pip install --python $(PY) -q -e '.[bench]'
	@test -f $(EXP)/best.pt || $(MAKE) digits
	$(PY) bench/beam_speed.py
	$(PY) bench/align_speed.py
	$(PY) bench/reference_ctc.py
	$(ASRKIT) lm build $(DATA)/train.jsonl -o $(EXP)/lm.arpa --order 3
	$(PY) bench/decode_rtf.py --lexicon $(DATA)/train.jsonl --lm $(EXP)/lm.arpa
	$(PY) bench/lm_speed.py
	$(PY) bench/lm_wer.py
	$(PY) bench/train_throughput.py
	$(PY) bench/gru_kernel.py

bench-zoo: setup
	$(PY) bench/zoo.py

bench-speakers: setup
	$(PY) bench/speakers.py

.PHONY: bench-scale gpu-check
bench-scale: setup
	$(PY) bench/scale.py

gpu-check: setup
	PY=$(PY) bash bench/gpu_check.sh

bench-stream: setup
	$(ASRKIT) prepare recipes/digits_stream.yaml
	$(ASRKIT) train recipes/digits_stream.yaml
	$(PY) bench/stream.py

clean:
	rm -rf data exp
