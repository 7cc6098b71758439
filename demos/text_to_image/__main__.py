"""``python -m demos.text_to_image``: the tab on its own, with the app's settings and secure launch."""

from demos.server import run_alone
from demos.text_to_image.ui import build_ui

run_alone(build_ui, "Text to image")
