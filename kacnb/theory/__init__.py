"""The mathematics (paper Sections 3-6): laws, velocities and exact samplers; no training.

May import: nothing of kacnb except the shared :mod:`kacnb._checks`, :mod:`kacnb.report`
and :mod:`kacnb._root`.

- ``kac`` -- the Kac process: law [30-31], velocity and exact samplers (Sections 4-6).
- ``telegraph`` -- the 1D telegrapher's equation and the laws it describes (Section 4).
- ``directions`` -- the left- and right-moving parts of the process (Remark 3, [32-33]).
- ``multid`` -- the componentwise process in several dimensions, product densities.
- ``insertion`` -- Kac's insertion in d dimensions (Thm 6, Remark 7, Lemma 8).
- ``flows`` -- flows of measures and the size of their velocity fields (Section 3).
- ``stats`` -- comparing draws with known laws (KS, chi-square, atoms).
- ``prefix_law`` -- the law the authors' sampler drew before its fix, against [30-31].
"""
