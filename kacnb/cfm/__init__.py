"""The flow-matching engine (paper Sections 6-7): paths, networks, training, sampling.

May import: :mod:`kacnb.theory` and the shared modules; never an experiment or the
collection. Training and sampling never branch on the model: every probability path of
``paths`` has the same small interface (draw ``x_t`` and its target velocity, draw the latent).

- ``paths`` -- probability paths (Kac, mean-reverting Kac, diffusion, rectified flow).
- ``models`` -- velocity-field networks: the 2D MLP, stacked MLPs, the light U-Net.
- ``config`` -- :class:`~kacnb.cfm.config.TrainConfig`, the settings of one training run.
- ``ensemble`` -- ``K`` runs advanced by one stacked step (a thing the trainer takes).
- ``train`` -- the CFM loss [97], the training loop, checkpoints, deadlines, locks.
- ``step_variants`` -- the fastest training step whose gradients are right on this machine.
- ``sampling`` -- integrate a learned velocity field backwards in time (Euler, RK4, dopri5).
- ``forked`` -- independent CPU work (chunks of samples) in forked single-thread processes.
- ``metrics`` -- sample quality: mixture NLL, mode coverage, Wasserstein-2, Frechet distance.
- ``pretrained`` -- weight bundles: save, verify by SHA-256, load with ``weights_only``.
"""
