"""A self-contained ``report.html`` per training run (``cnnkit report RUN``; written at the end of training):
the run's figures and curves, its config, the validation images it got most wrong, Grad-CAM maps of a few,
the network's diagram. No network access: images are inline ``data:`` URIs, the diagram inline SVG."""

from cnnkit.report.build import checkpoint_of, report_after_training, write_report

__all__ = ["checkpoint_of", "report_after_training", "write_report"]
