"""kacnb: helpers for the notebooks reproducing 'Telegrapher's Generative Model via Kac Flows'."""

from .kac import Kac, KacTableSampler, LinearSchedule, MeanRevertingKac

__all__ = ["Kac", "KacTableSampler", "LinearSchedule", "MeanRevertingKac"]
__version__ = "0.1.0"
