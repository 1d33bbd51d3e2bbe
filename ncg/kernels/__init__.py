"""Evaluation kernels for FreeNets: reference, blocked and compiled paths."""
