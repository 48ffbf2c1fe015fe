"""Adapter methods by name: the one table that :func:`training.finetune.finetune`, a study's
``[training]`` section (the study config's ``TrainingSpec``) and ``probekit train --method``
read. Kept free of torch so that reading a study config stays light.

>>> available_methods()
['lora', 'mas-lora']
>>> get_method("mas-lora").experts(["es", "it"])
('es', 'it')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from probekit.registry import Registry

__all__ = ["AdapterMethod", "register_method", "available_methods", "get_method",
           "DEFAULT_METHOD"]

#: The method used when none is named.
DEFAULT_METHOD = "lora"


@dataclass(frozen=True)
class AdapterMethod:
    """One way of adapting the Whisper encoder.

    Attributes
    ----------
    name : str
        Registry name (``--method``, ``[training] methods``, the ``method`` of a run).
    help : str
        One line for ``probekit train --help`` and the docs.
    expert_per_group : bool
        One encoder expert per training group (MAS-LoRA), else a single adapter.
    """

    name: str
    help: str
    expert_per_group: bool = False

    def experts(self, train_groups: Sequence[str]) -> tuple[str, ...]:
        """The encoder experts of a run trained on ``train_groups`` (``AdapterConfig.experts``)."""
        return tuple(train_groups) if self.expert_per_group else ()


_METHODS: Registry[AdapterMethod] = Registry("adapter method")


def register_method(method: AdapterMethod) -> AdapterMethod:
    """Add ``method`` under its name. The same object again is allowed; another under a taken
    name raises :class:`~probekit.registry.RegistryError` naming both."""
    return _METHODS.add(method.name, method)


def available_methods() -> list[str]:
    """Registered adapter method names, sorted."""
    return _METHODS.names()


def get_method(name: str) -> AdapterMethod:
    """The method registered as ``name`` (unknown: :class:`~probekit.registry.RegistryError`
    listing the registered ones)."""
    return _METHODS[name]


register_method(AdapterMethod("lora", "plain LoRA on the adapted modules"))
register_method(AdapterMethod("mas-lora", "MAS-LoRA: one encoder expert per training group",
                              expert_per_group=True))
