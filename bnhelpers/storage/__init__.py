"""Data on disk: reading MNIST (mnist), verified downloading (download), checkpoints without pickle
(checkpoint) and the atomic, bounded file operations they share (files)."""
