"""Escalation: what OCR text matching leaves unresolved goes to a logo matcher or a VLM."""
