"""Human-facing renderings of a run's Report: the annotated video, report.html and its screenshot."""
