"""``python -m demos.chat``: the tab on its own, with the app's settings and secure launch."""

from demos.chat.ui import build_ui
from demos.server import run_alone

run_alone(build_ui, "Chat")
