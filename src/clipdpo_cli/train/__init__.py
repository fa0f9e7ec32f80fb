"""DPO training: TRL wrapper, loss variants, launcher."""
