"""Report presets: one module per seed report (``seed_004``), each defining ``REPORT``, a
:class:`core.report.ReportPreset`. ``python -m core.report --report seed_004`` renders one."""
