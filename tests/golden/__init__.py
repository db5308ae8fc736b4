"""Golden-output fixtures: the case table (:mod:`.cases`) and its generator (``make_golden.py``)."""
