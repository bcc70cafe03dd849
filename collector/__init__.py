"""Collector: wearables (real and simulated) to MQTT sample frames."""
