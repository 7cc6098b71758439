"""The Text-to-image tab: recipe → core → views → steps → generate → panels → ui."""
