"""earshot_train: data, teacher, student distillation and bundle export for earshot."""

__version__ = "0.1.0"
