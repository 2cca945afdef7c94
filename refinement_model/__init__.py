"""Networks, data loading, patch tiling, metrics, training and inference for etmira-refine.

This package never imports Qt.
"""
