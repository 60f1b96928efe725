"""Benchmarks of the bridge against its limits: `python -m bench` (or `make bench`).

Each benchmark runs the real thing (a mosquitto of its own via `demo.broker`,
the reference platform via `receiver.server`, the bridge as a child process)
next to a baseline doing the least the same job needs (a bare paho
subscriber, `mosquitto_sub`, orjson alone), in the same run, and reports the
ratio. Absolute numbers depend on the machine; the ratios are what the targets
are about. Results go to the terminal as a table and to `bench/results.json`.

Modules: `coldstart`, `ingest`, `latency`, `footprint`, `reportbuild` (one
benchmark each), `stack` (broker, platform and bridge plumbing), `mqttraw` (a
publisher that writes pre-built MQTT packets, so the publisher is never the
bottleneck), `pahosub` (the bare paho subscriber, run as its own process).
"""
