"""Synthetic mirrors, stroke statistics, the simulated annotator and the evaluation protocol.

This package never imports Qt.
"""
