"""kacnb: helpers for the notebooks reproducing 'Telegrapher's Generative Model via Kac Flows'.

The package has four layers, one subpackage each; a layer imports only from the layers below
it (``tests/test_layers.py`` reads every import and fails on one that goes up or in a circle):

- :mod:`kacnb.theory` -- the mathematics of Sections 3-6: the Kac process, the telegrapher's
  equation, Kac's insertion, flows of measures. No training, no networks.
- :mod:`kacnb.cfm` -- the flow-matching engine: probability paths, networks, the trainer,
  ensembles, ODE sampling, metrics, weight bundles. Knows no experiment.
- :mod:`kacnb.experiments` -- the two experiments of Section 7: the 2D Gaussian mixture
  (notebook 04) and MNIST (notebook 05), with their data, oracles and analyses.
- :mod:`kacnb.collection` -- everything around the notebooks: runner, CLI, parameters, drift,
  site, exercises, figures' style.

Below all four sit three shared modules that import nothing of kacnb:
:mod:`kacnb._checks` (argument checks), :mod:`kacnb.report` (the verdict rows every notebook
ends with) and :mod:`kacnb._root` (the project's folder). ``docs/architecture.md`` shows the
layers and the flow of one run.
"""

__version__ = "0.1.0"
