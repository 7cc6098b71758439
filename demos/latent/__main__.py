"""``python -m demos.latent``: the tab on its own, with the app's settings and secure launch."""

from demos.glue import run_alone
from demos.latent.ui import build_ui

run_alone(build_ui, "Latent sampling")
