"""Sphinx configuration of the rendered site (``kacnb site --out DIR``).

``kacnb site`` copies this file into a staging folder next to the generated ``index.md``, the
executed notebooks and their figures, and builds HTML from there. The notebooks are shown as
executed by ``kacnb run`` (MyST-NB, execution off); math is rendered in the browser by a
MathJax copy shipped with the site (sphinx-mathjax-offline), so the pages need no network.
"""

project = "kacnb"
author = "kacnb contributors"
copyright = "kacnb contributors"

extensions = ["myst_nb", "sphinx-mathjax-offline"]

# Show the committed outputs; never run a notebook while building the site.
nb_execution_mode = "off"
# Progress bars on stderr are noise on a static page.
nb_output_stderr = "remove"
# $...$, $$...$$ and amsmath environments in markdown cells and pages.
myst_enable_extensions = ["dollarmath", "amsmath"]
# $$...$$ inside a paragraph is display math, as in Jupyter (the notebooks write it so).
myst_dmath_double_inline = True
# Anchors for "#section-title" links in the pages (docs/paper-notes.md uses them).
myst_heading_anchors = 3
# A notebook's heading levels are its own business (e.g. "#" followed by "###").
suppress_warnings = ["myst.header"]

# MathJax 3 from the site's own _static/mathjax/ (copied there by sphinx-mathjax-offline).
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "alabaster"
html_title = "kacnb: Telegrapher's Generative Model via Kac Flows"
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_theme_options = {"page_width": "1200px", "sidebar_width": "240px"}
html_show_sourcelink = False
html_copy_source = False

exclude_patterns = ["_build"]
