"""Figures (``pfs plot``) and the self-contained HTML report (``pfs report``) of an output directory."""
