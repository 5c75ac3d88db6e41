"""Ensembles: ``K`` independent flow-matching runs advanced by one stacked training step.

An :class:`Ensemble` is a list of :class:`Member` s, each holding what a single
:func:`kacnb.cfm.train.train` call would get for that model: an :class:`~kacnb.cfm.models.MLP`, a
probability path, a data sampler, a :class:`~kacnb.cfm.config.TrainConfig` (seed, steps,
checkpoint file, ...) and an optional validation callback. ``train(ensemble)`` trains all
members at once: the weights of the members are stacked along a leading model axis
(:class:`~kacnb.cfm.models.StackedMLP`) and one forward/backward pass with batched matmuls
computes the CFM loss [97] and its gradient for every member. Everything else stays per
member, so each member ends where its own single run would (to float rounding of the
batched matmuls):

* its own ``torch.Generator`` seeded with its ``config.seed``, drawing its data and path
  noise in the same order as the single run, so the training draws are identical;
* gradient-norm clipping per member (:func:`clip_grad_norm_per_model`), never over the stack;
* Adam and the EMA act elementwise, so on stacked tensors they are the per-member updates;
* validation, best weights, checkpoint file (the single-run format, so a member's file can
  be resumed by a single run and the other way round) and the loss record per member.

Members may have different step counts: the trainer advances together the members at the
same step and drops a member from the stack when it has finished.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .config import TrainConfig
from .models import MLP, StackedMLP

__all__ = [
    "Member",
    "Ensemble",
    "SHARED_SETTINGS",
    "clip_grad_norm_per_model",
    "stack_optimizer_states",
    "member_optimizer_state",
]

#: TrainConfig fields that must agree between members: one stacked step uses one batch
#: size, one Adam learning rate, one clipping threshold, one EMA decay, one autocast.
SHARED_SETTINGS = ("batch_size", "lr", "grad_clip", "ema_decay", "amp_dtype", "compile")


@dataclass
class Member:
    """One model of an ensemble: the arguments of its single ``train()`` call.

    ``model`` an :class:`~kacnb.cfm.models.MLP` (trained in place, as by ``train``); ``path``
    a probability path of :mod:`kacnb.cfm.paths`; ``data(n, generator)`` draws ``n`` starts
    (n, d); ``config`` its settings (its own ``seed``, ``steps``, ``eval_every``,
    ``checkpoint_path``, ``checkpoint_every``, ``desc``); ``validate(model, generator)``
    a number, lower is better.
    """

    model: MLP
    path: object
    data: Callable[[int, torch.Generator], torch.Tensor]
    config: TrainConfig
    validate: Callable[[torch.nn.Module, torch.Generator], float] | None = None


class Ensemble:
    """``K`` members of one MLP architecture, trained together by :func:`kacnb.cfm.train.train`.

    Raises ``ValueError`` when the members' networks differ in architecture or their
    configs differ in a :data:`SHARED_SETTINGS` field.
    """

    def __init__(self, members: Sequence[Member]):
        self.members = tuple(members)
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        for m in self.members:
            if not isinstance(m.model, MLP):
                raise ValueError(f"ensemble members must be MLPs, got {type(m.model).__name__}")
        arch = {StackedMLP.architecture(m.model) for m in self.members}
        if len(arch) != 1:
            raise ValueError(f"ensemble members need one architecture (dim, width, depth): {arch}")
        for name in SHARED_SETTINGS:
            values = {repr(getattr(m.config, name)) for m in self.members}
            if len(values) != 1:
                raise ValueError(f"ensemble members must share config.{name}, got {values}")
        paths = [m.config.checkpoint_path for m in self.members if m.config.checkpoint_path]
        if len({str(p) for p in paths}) != len(paths):
            raise ValueError("ensemble members need distinct checkpoint paths")

    def __len__(self) -> int:
        return len(self.members)

    def __repr__(self) -> str:
        return f"Ensemble({', '.join(m.config.desc for m in self.members)})"


def clip_grad_norm_per_model(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the gradients of stacked parameters (leading model axis K) model by model.

    For each model ``k`` the total norm is the Euclidean norm of all its gradient entries
    ``p.grad[k]``, and its gradients are scaled by ``min(1, max_norm / (norm + 1e-6))``, as
    :func:`torch.nn.utils.clip_grad_norm_` does for one model (the same norm of per-tensor
    norms). A model with huge gradients therefore never shrinks another model's update, as
    one global norm over the stack would. Returns the norms before clipping (K,).
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
    total = torch.linalg.vector_norm(per_tensor, dim=0)  # (K,)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.reshape((-1,) + (1,) * (g.ndim - 1)).to(g.dtype))
    return total


def stack_optimizer_states(states: Sequence[dict | None], template: dict) -> dict | None:
    """One Adam ``state_dict`` for stacked parameters from ``K`` single-model ones.

    ``states[k]`` is the ``state_dict`` of Adam over model ``k``'s :class:`MLP` parameters
    (or ``None`` for a fresh optimiser: then all must be ``None`` and ``None`` is returned);
    the moment estimates are stacked along a new leading axis. The step count must agree
    (members are stacked only at equal steps). ``template`` is the stacked optimiser's own
    ``state_dict`` (its ``param_groups`` are kept).
    """
    if all(s is None for s in states):
        return None
    if any(s is None for s in states):
        raise ValueError("cannot stack a fresh optimiser with a trained one")
    out = {"state": {}, "param_groups": copy.deepcopy(template["param_groups"])}
    for i in states[0]["state"]:
        per = [s["state"][i] for s in states]
        steps = {float(p["step"]) for p in per}
        if len(steps) != 1:
            raise ValueError(f"members at different optimiser steps {sorted(steps)}")
        entry = {"step": per[0]["step"].clone()}
        for key in per[0]:
            if key != "step":
                entry[key] = torch.stack([p[key] for p in per])
        out["state"][i] = entry
    return out


def member_optimizer_state(state: dict, k: int) -> dict:
    """Model ``k``'s single-model Adam ``state_dict`` cut from a stacked one (copies)."""
    out = {"state": {}, "param_groups": copy.deepcopy(state["param_groups"])}
    for i, entry in state["state"].items():
        out["state"][i] = {
            key: (v.clone() if key == "step" else v[k].clone()) for key, v in entry.items()
        }
    return out
