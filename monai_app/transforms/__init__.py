"""The dictionary transforms MONAI lacks: BraTS label conventions (:mod:`.brats`), generic volume steps such as N4
bias-field correction and atomic per-case writing (:mod:`.common`), and 2-D photo and label-PNG steps
(:mod:`.images2d`). Configs name them by full dotted path."""
