# se3-bridge: the demo stack, the tests and their set-up, from a fresh Debian box.
#
#   make run     the whole demo: broker, receiver, cameras, collectors, bridge
#                (installs the runtime dependencies only); RELEASE=V6R1C01 make run
#                plays another platform release, MQTT_PORT=... RECEIVER_PORT=...
#                METRICS_PORT=... CONSOLE_PORT=... SYSTEM_PORT=... other ports
#   make test    lint, then every test (adds the dev extras: pytest, mypy, ...)
#   make soak    the long soak (SOAK_SECONDS=1500): churn, outages, broker crashes
#   make dist    dist/se3-bridge_<version>_{amd64,arm64}.deb: installs with no network
#   make clean   removes generated state (var/: broker passwords, retained records)
#
# System packages come from apt (with sudo when not root), Python ones into
# .venv. Generated state (broker passwords, its database) lives in var/.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
MQTT_DIR := var/mqtt
# The demo's platform release and ports (README): from the environment, else these.
RELEASE ?= V2R2C01
MQTT_PORT ?= 1883
# debug and monitor (mosquitto_sub windows) log in here, many sessions each.
MQTT_WATCH_PORT ?= 1884
RECEIVER_PORT ?= 9528
METRICS_PORT ?= 9530
CONSOLE_PORT ?= 5555
SYSTEM_PORT ?= 8888
# The config of this run: config/demo.toml with the release and ports above.
DEMO_CONFIG := var/demo.toml
# Debian keeps mosquitto in /usr/sbin, which is not on a normal user's PATH.
RUN_PATH := $(CURDIR)/$(VENV)/bin:$(PATH):/usr/sbin

.PHONY: venv dev-venv deps browser-deps demo-config broker-setup run test lint bench soak clean dist

# venv: what the programs need to run; dev-venv: that plus the dev extras.
venv: $(STAMP)
dev-venv: $(DEV_STAMP)

# Rebuilt when missing or when pyproject.toml is newer than the last install.
# A venv left half-made (no pip) by a failed earlier run is made again.
$(STAMP): pyproject.toml | deps
	$(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && python3 -m venv $(VENV); }
	$(PY) -m pip install -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(PY) -m pip install -e '.[dev]'
	touch $@

deps:
	@pkgs=""; \
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then pkgs="mosquitto"; fi; \
if ! command -v mosquitto_sub >/dev/null; then pkgs="$$pkgs mosquitto-clients"; fi; \
if ! python3 -c 'import ensurepip' >/dev/null 2>&1 && command -v dpkg >/dev/null; then \
  pkgs="$$pkgs python3-venv"; fi; \
if [ -n "$$pkgs" ]; then \
  echo "make deps: installing$$pkgs"; \
  $(SUDO) apt-get update && $(APT_INSTALL) $$pkgs; \
fi; \
if [ -d /run/systemd/system ] && systemctl is-active --quiet mosquitto 2>/dev/null \
    && [ "$${pkgs#mosquitto}" != "$$pkgs" ]; then \
  echo "make deps: Debian started mosquitto.service on 127.0.0.1:$(MQTT_PORT), where the" \
    "demo runs its own broker; stopping and disabling it" \
    "(undo: sudo systemctl enable --now mosquitto)"; \
  $(SUDO) systemctl disable --now mosquitto; \
fi

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
  echo "make browser-deps: installing chromium for the browser test"; \
  { $(SUDO) apt-get update && $(APT_INSTALL) chromium fonts-wqy-microhei; } \
    || echo "make browser-deps: could not install chromium; the browser test will be skipped"; \
fi

demo-config: venv
	@$(PY) -m demo.config --release $(RELEASE) --out $(DEMO_CONFIG) --port mqtt=$(MQTT_PORT) \
  --port watch=$(MQTT_WATCH_PORT) --port receiver=$(RECEIVER_PORT) --port metrics=$(METRICS_PORT) \
  --port console=$(CONSOLE_PORT) --port system=$(SYSTEM_PORT)

broker-setup: deps venv demo-config
	$(PY) -m demo.broker setup --dir $(MQTT_DIR) --port $(MQTT_PORT) --watch-port $(MQTT_WATCH_PORT) \
  --config $(DEMO_CONFIG)

run: deps venv broker-setup
	@$(PY) -m demo.broker check-port --port $(MQTT_PORT) --port $(MQTT_WATCH_PORT) --port $(RECEIVER_PORT) \
  --port $(METRICS_PORT) --port $(CONSOLE_PORT) --port $(SYSTEM_PORT)
	@$(PY) -m console --config $(DEMO_CONFIG) --log-level WARNING password-file >/dev/null
	@echo
	@echo "  Platform release $(RELEASE); reports as the platform sees them:"
	@echo "                                      http://127.0.0.1:$(RECEIVER_PORT)/"
	@echo "  The box's console and API:          http://127.0.0.1:$(CONSOLE_PORT)/  (user admin)"
	@echo "    its password:  cat var/console/admin.pass"
	@echo "  Everything on the broker:"
	@echo "    XDG_CONFIG_HOME=$(MQTT_DIR)/clients/debug mosquitto_sub -t 'se3/#' -v"
	@echo "  Ctrl-C stops everything."
	@echo
	@# Each of these listens before the next process starts (demo/run.py): the bridge
	@# finds the receiver at its first report, the collectors the cameras at their first probe.
	PATH="$(RUN_PATH)" PYTHONUNBUFFERED=1 exec $(PY) -m demo.run --procfile Procfile \
  --ready broker=127.0.0.1:$(MQTT_PORT) --ready receiver=127.0.0.1:$(RECEIVER_PORT) \
  --ready cameras=127.0.0.11:8554 --ready cameras=127.0.0.12:8554

test: deps browser-deps dev-venv
	$(MAKE) --no-print-directory lint
	@# Two workers: most tests wait on processes and sockets, not the CPU (3 min, not 6).
	@# -rs: each skipped test is listed with its reason at the end.
	PATH="$(RUN_PATH)" $(VENV)/bin/pytest -q -rs -p no:cacheprovider -n 2 --dist loadgroup

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: dev-venv deps
	PATH="$(RUN_PATH)" $(PY) -m bench

# The long soak: churn, platform outages and broker crashes for SOAK_SECONDS
# (default 25 minutes); prints RSS/fd/thread slopes and the final-state check.
SOAK_SECONDS := 1500
soak: dev-venv deps
	PATH="$(RUN_PATH)" $(PY) -m bench.soak --duration $(SOAK_SECONDS)

# One Debian package per CPU architecture, each with every Python dependency as wheels
# for it and CPython 3.11 (deploy/debian/build.sh; deploy/README.md).
DIST_ARCHES := amd64 arm64
dist: venv
	deploy/debian/build.sh --python $(PY) --out dist $(DIST_ARCHES)

clean:
	rm -rf var build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# The installed units booted for real in a Debian container (systemd-nspawn), the
# packages of `make dist` in an amd64 and an arm64 one (qemu-user-static), plus the
# network-fault tests that need iptables and network namespaces; as root.
# The containers' roots are cached in var/deploy (debootstrap, once). See tests/deploy/.
DEPLOY_PKGS := systemd-container debootstrap iptables iproute2 util-linux \
  qemu-user-static binfmt-support lintian
.PHONY: test-deploy
test-deploy: deps dev-venv dist
	@missing=""; for p in $(DEPLOY_PKGS); do \
  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "make test-deploy: installing$$missing"; \
  $(SUDO) apt-get update && $(APT_INSTALL) $$missing; \
fi
	$(SUDO) env PATH="$(RUN_PATH)" SE3_TEST_DEPLOY=1 $(VENV)/bin/pytest -q -p no:cacheprovider \
  --timeout 900 tests/deploy tests/integration/test_network_faults.py
