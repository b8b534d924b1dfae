"""Computer-vision building blocks of the vision stages (pitch, lines, detector, crops, overlays)."""
