"""The scenes now live in ``shared/scenes.py`` (the app's CLIP panel draws them too); this name stays
for the training scripts and the checkpoints' commands."""

import sys

from shared import scenes

sys.modules[__name__] = scenes
