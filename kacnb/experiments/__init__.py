"""The two experiments of Section 7: the 2D Gaussian mixture and MNIST.

May import: :mod:`kacnb.cfm`, :mod:`kacnb.theory` and the shared modules; never the
collection.

- ``gmm2d`` -- notebook 04: Kac flow matching against diffusion on the 2D mixture.
- ``exact2d`` -- exact marginal velocity fields of the 2D mixture (the oracle).
- ``latent`` -- the error of the standard latent (text before 7.1).
- ``truncation`` -- the diffusion baseline's truncation, measured with the exact field.
- ``mnist_exp`` -- notebook 05: the MNIST models, their training and scoring.
- ``classifier`` -- a small MNIST classifier: accuracy, features for the Frechet distance.
- ``data`` -- MNIST in its IDX format, verified by checksum.
- ``learning_curve`` -- MNIST sample quality against training time.
"""
