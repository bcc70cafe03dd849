"""The BLE collector: real wearables → wire frames on MQTT, through bleak (docs/ble.md).

``runtime.Collector`` runs ``twitchwatch collect``; ``scan.scan_nearby`` is ``twitchwatch devices scan``.
The device profiles' pure decoders (``collector.devices``) do the byte work; this package owns the I/O:
scanning, connecting, notifications, reconnects, status and time stamps.
"""
