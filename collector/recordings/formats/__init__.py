"""Recording formats: one module each, found by a scan (``collector.recordings.reader.discover``).

A module here defines a ``RecordingReader`` subclass naming its ``EXTENSIONS`` (and ``MAGIC`` bytes where the
format has them); ``detect``, ``replay``, ``simulate --recording`` and ``export`` read the format from then
on. Modules whose names start with ``_`` are private helpers and are not scanned.
"""
