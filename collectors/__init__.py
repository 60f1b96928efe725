"""The collectors: programs that publish the gateway's and its sub-devices' state to MQTT.

`se3-collector gateway` publishes the box's identity and metrics, `se3-collector
devices` probes the configured sub-devices, and `se3-collector publish` lets a
script or an app publish or delete one device record (docs/topics.md; README, the programs).
"""
