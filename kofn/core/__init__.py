"""The framework-free core: fixed-point arithmetic (:mod:`.fixed`), the IR (:mod:`.ir`, its
layers in :mod:`.ir_layers` and :mod:`.ir_plain`), IR-level rules (:mod:`.rules`), identifier
rules (:mod:`.names`), the typed layer descriptions (:mod:`.layers`) and their graph
(:mod:`.wiring`), the integer reference (:mod:`.reference`) and random test models
(:mod:`.testing`).  Numpy only: no torch, no jinja2, no simulator; every other part of kofn
builds on this and nothing here imports them."""
