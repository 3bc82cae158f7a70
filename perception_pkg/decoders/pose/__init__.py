"""Pose decoders, each card class beside its maths (``decoder.type`` in :mod:`..registry`):
:mod:`.heatmap_argmax` (argmax + RSN post-processing), :mod:`.integral` (soft-argmax),
:mod:`.mass_displacement` (voting), :mod:`.mixture_pose` (bottom-up mixture-density offsets),
:mod:`.simcc` (RTMPose 1-D x / y classification vectors);
:mod:`.topdown` is the base of the top-down map decoders, :mod:`.geometry` the heatmap <-> crop <-> image
coordinate maps they all share.

Nothing is imported here: the registry imports a decoder's module when a card names it.
"""
