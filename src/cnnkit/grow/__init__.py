"""Segmentation without masks: from seeds (a few marked pixels per class) or from nothing at all.

A small CNN is trained on the images themselves (Kim, Kanezaki and Tanaka, IEEE TIP 2020: cross-entropy to
the network's own argmax plus an L1 spatial-continuity term), once per folder so that a segment id means
the same thing in every image; seeds add a cross-entropy on the seeded pixels and are kept as hard
constraints in the output. ``seeds.py`` reads and checks seed files (torch-free), ``method.py`` trains and
labels (torch), ``output.py`` writes a data set that ``cnnkit train segment`` reads.
"""
