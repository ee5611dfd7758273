"""The method, as pure functions over arrays where it can be: Adaptive Threshold Learning, Sample Mining, the
Tri-Regularization losses, one ASM step, and the label-quality scores."""
