"""Learning from outcomes: the features a lead had at a moment (:mod:`.features`) and
the models trained on them (:mod:`.model`).

Kept apart from ``domain/`` because it imports scikit-learn and numpy; it does no I/O
and opens no transaction either, so services call it the way they call the domain.
"""
