"""Pretrained audio teachers (encoder side): EfficientAT mn04_as, optionally YAMNet."""

from earshot_train.teacher.mn04 import MN04, MN04_FRONTEND, MN04Tuple, load_mn04, mn04_labels

__all__ = ["MN04", "MN04Tuple", "MN04_FRONTEND", "load_mn04", "mn04_labels"]
