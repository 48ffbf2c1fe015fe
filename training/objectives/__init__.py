"""Training objectives, built by name: ``build_objective("fused", fused_weights={...})``.

Adding one: a module here with a class decorated ``@register_objective("name")``, imported
below. The table-driven test in ``tests/training/test_objectives.py`` covers every member.
"""

from training.objectives.base import (IGNORE_INDEX, Objective, ObjectiveError, ObjectiveInput,
                                      available_objectives, build_objective, group_risks,
                                      all_sum, register_objective, utterance_risks, world_size)
from training.objectives.erm import ERM, BalancedERM
from training.objectives.fused import PAPER_WEIGHTS, Fused
from training.objectives.group_dro import GroupDRO
from training.objectives.irm import IRM, irm_penalty, irm_terms
from training.objectives.sd import SpectralDecoupling, squared_logits

__all__ = ["BalancedERM", "IGNORE_INDEX", "Objective", "ObjectiveError", "ObjectiveInput",
           "available_objectives", "build_objective", "group_risks", "register_objective",
           "utterance_risks", "ERM", "Fused", "PAPER_WEIGHTS", "GroupDRO", "IRM", "irm_penalty",
           "irm_terms", "all_sum", "world_size",
           "SpectralDecoupling", "squared_logits"]
