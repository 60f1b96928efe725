"""The bare paho subscriber: the least a Python program does to drain a topic filter.

Run as its own process (`python bench/pahosub.py ...`, no package import), so
its time from process start includes the interpreter and paho, as the
bridge's does. It connects, subscribes at QoS 0, counts messages in
`on_message` and nothing else, and exits once it has `--count` of them,
printing one JSON line: the monotonic times of its start, its first message
and its last (CLOCK_MONOTONIC is shared by all processes, so the caller can
compare them with its own).

`--live` counts only messages that are not a retained replay, and prints
`ready` once the replay after subscribing is over (the answer to a second
subscription comes after it, as in the bridge).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

START = time.monotonic()

import paho.mqtt.client as mqtt  # noqa: E402 - START is taken before the import on purpose
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--live", action="store_true")
    args = parser.parse_args()
    with open(args.password_file, encoding="utf-8") as fh:
        password = fh.read().strip()

    count = 0
    first = done = 0.0
    fence_mid: list[int] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.username_pw_set(args.username, password)

    def on_connect(c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        c.subscribe(args.topic, qos=0)
        if args.live:
            _, mid = c.subscribe(f"{args.topic.rstrip('#')}bench/fence", qos=0)
            fence_mid.append(mid if mid is not None else -1)

    def on_subscribe(_c: mqtt.Client, _u: object, mid: int, _codes: object, _p: object) -> None:
        if mid in fence_mid:
            print("ready", flush=True)

    def on_message(c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count, first, done
        if args.live and msg.retain:
            return
        count += 1
        if count == 1:
            first = time.monotonic()
        if count == args.count:
            done = time.monotonic()
            c.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=60)
    client.loop_forever()
    print(json.dumps({"start": START, "first": first, "done": done, "count": count}), flush=True)
    return 0 if count == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
