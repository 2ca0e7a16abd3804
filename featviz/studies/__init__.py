"""The studies featviz runs and ships: one module per study, each with the same shape.

- :mod:`featviz.studies.hierarchy`: the synthetic hierarchy study (``featviz hierarchy run``)
- :mod:`featviz.studies.alpha_sweep`: contamination vs α (``featviz hierarchy alpha-sweep``)
- :mod:`featviz.studies.scaling`: samples needed vs dimension (``featviz hierarchy scaling``)
- :mod:`featviz.studies.images`: the image study on a conv teacher (``featviz hierarchy images``)
- :mod:`featviz.studies.compare`: training modes over seeds (``featviz compare``)
- :mod:`featviz.studies.purification`: feature purification (``featviz purify``)

What they share (the seed loop, budgets, spread, writing) is in :mod:`featviz.studies.common`.
The libraries they use (nets, training, attacks, visualization, the hierarchy learners and
metrics) never import from here; the report reads what the studies write.
"""
