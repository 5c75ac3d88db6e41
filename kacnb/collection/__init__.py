"""The collection around the notebooks: run, check, publish, read and teach.

May import: every layer below (:mod:`kacnb.experiments`, :mod:`kacnb.cfm`,
:mod:`kacnb.theory`) and the shared modules.

- ``cli`` -- the ``kacnb`` command (``list``, ``run``, ``golden``, ``drift``, ``site``, ...).
- ``runner`` -- execute the notebooks with papermill and publish the results atomically.
- ``registry`` -- the notebooks: number, file stem, title and the figures they write.
- ``params`` -- checks for the reader-facing settings of a parameters cell.
- ``runtime`` -- a notebook's set-up: profile, device, seeds and figure style.
- ``plotting`` -- one matplotlib style, inline figures and saved files.
- ``liveprogress`` -- a notebook's progress bars echoed on the runner's terminal.
- ``provenance`` -- which device and which commit made a result.
- ``drift`` -- what changed between a fresh run and the committed outputs.
- ``numtext`` -- printed text as a skeleton and its numbers (for tolerant comparison).
- ``site`` -- the static HTML site of the executed notebooks.
- ``exercises`` -- course exercises: autograder checks and student versions.
- ``explore`` -- sliders for notebooks 02 and 03 (a figure without ipywidgets).
"""
