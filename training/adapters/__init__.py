"""LoRA and MAS-LoRA adapters for transformers Whisper models."""

from training.adapters.layer import LoRALinear
from training.adapters.lora import (AdapterConfig, AdapterError, inject_adapters, load_adapters,
                                    lora_layers, merge_adapters, save_adapters,
                                    trainable_parameters)
from training.adapters.mas_lora import (apply_mas_lora, expert_index, mas_lora_config,
                                        hold_absent_experts, mixture_weights, routed,
                                        set_mixture)

__all__ = ["LoRALinear", "AdapterConfig", "AdapterError", "inject_adapters", "load_adapters",
           "lora_layers", "merge_adapters", "save_adapters", "trainable_parameters",
           "apply_mas_lora", "expert_index", "mas_lora_config", "mixture_weights", "routed",
           "set_mixture", "hold_absent_experts"]
