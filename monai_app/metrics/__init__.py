"""Scoring: BraTS regions (Dice and HD95 with the BraTS conventions, folder against folder), per-class scores of
multi-class 2-D segmentation from confusion matrices, and the per-case metric tables every scorer writes."""
