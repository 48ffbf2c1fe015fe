"""training: fairness-aware fine-tuning of Whisper adapters (ERM, SD, Group-DRO, IRM, MAS-LoRA)."""
