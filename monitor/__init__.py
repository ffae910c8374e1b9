"""slawatch: network service monitoring and SLA measurement.

The core package. Submodules are small and named for what they do:
``config`` (typed YAML config), ``store`` (SQLite storage), ``state``
(target state machine), ``scheduler``, ``exporter`` (Prometheus),
``daemon`` and ``cli``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
