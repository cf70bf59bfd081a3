# Sightline: build and install.
#
#   make                      release build, the Swift runtime linked in (swift build -c release --static-swift-stdlib)
#   make install              build, then install under PREFIX (default /usr/local)
#   make install DESTDIR=/tmp/stage PREFIX=/usr        staged install, e.g. for packaging
#   make uninstall            remove what install put there (keeps /etc/sightline/sightline.yaml)
#   make test                 the README's test command (./scripts/test.sh)
#
# Installed files:
#   $(BINDIR)/sightline
#   $(UNITDIR)/sightline.service, sightline.socket, sightline-http.socket   (paths substituted; none enabled)
#   $(SYSUSERSDIR)/sightline.conf                      (the service user; systemd-sysusers creates it, in DESTDIR too)
#   $(SYSCONFDIR)/sightline/sightline.yaml             (only if absent: an edited config is never overwritten)
#   $(DATADIR)/sightline/models/pedestrian-ssdlite/   (the default model and its int8 calibration; `scripts/setup.sh` makes them)
#   $(DATADIR)/doc/sightline/                          (CONFIG.md, SCHEMA.md, HTTP.md)
# INSTALL_SKIP_BUILD=1 installs the binary already in .build/release without building it first.

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
DATADIR    ?= $(PREFIX)/share
SYSCONFDIR ?= /etc
# systemd searches /usr/local/lib/systemd/system and /usr/lib/systemd/system; for another PREFIX
# set UNITDIR=/etc/systemd/system.
UNITDIR    ?= $(PREFIX)/lib/systemd/system
# systemd-sysusers reads /usr/local/lib/sysusers.d and /usr/lib/sysusers.d (and /etc/sysusers.d).
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d

SWIFT ?= $(shell command -v swift 2>/dev/null || echo /opt/swift/usr/bin/swift)
INSTALL ?= install
# The Swift standard library and Foundation are linked statically, so the installed binary runs without
# a Swift toolchain. scripts/demo.sh builds with the same flags into the same .build, so they share it.
SWIFT_BUILD_FLAGS ?= --static-swift-stdlib
INSTALL_SKIP_BUILD ?=

RELEASE_BIN := .build/release/sightline
MODEL_SRC   := .cache/models/pedestrian-ssdlite
MODEL_FILES := frozen_inference_graph.pb frozen_inference_graph.json frozen_inference_graph.calibration.json
MODEL_DIR   := $(DATADIR)/sightline/models/pedestrian-ssdlite
DOC_DIR     := $(DATADIR)/doc/sightline
DOCS        := $(wildcard docs/CONFIG.md docs/SCHEMA.md docs/HTTP.md)
CONFIG      := $(SYSCONFDIR)/sightline/sightline.yaml

.PHONY: all build test install install-bin install-units install-user install-config install-model install-docs uninstall

all: build

build:
	$(SWIFT) build -c release $(SWIFT_BUILD_FLAGS)

test:
	./scripts/test.sh

ifeq ($(INSTALL_SKIP_BUILD),)
install-bin: build
endif
install-bin:
	@test -x $(RELEASE_BIN) || { echo "make: $(RELEASE_BIN) is missing; run make build" >&2; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(RELEASE_BIN) $(DESTDIR)$(BINDIR)/sightline

install-units:
	$(INSTALL) -d $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/local/bin/sightline|$(BINDIR)/sightline|g' -e 's|/usr/local/share/|$(DATADIR)/|g' \
		-e 's|/etc/sightline/|$(SYSCONFDIR)/sightline/|g' systemd/sightline.service > $(DESTDIR)$(UNITDIR)/sightline.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/sightline.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/sightline.service.tmp $(DESTDIR)$(UNITDIR)/sightline.service
	sed -e 's|/usr/local/share/|$(DATADIR)/|g' -e 's|/etc/sightline/|$(SYSCONFDIR)/sightline/|g' \
		systemd/sightline.socket > $(DESTDIR)$(UNITDIR)/sightline.socket.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/sightline.socket.tmp
	mv -f $(DESTDIR)$(UNITDIR)/sightline.socket.tmp $(DESTDIR)$(UNITDIR)/sightline.socket
	sed -e 's|/usr/local/share/|$(DATADIR)/|g' systemd/sightline-http.socket > $(DESTDIR)$(UNITDIR)/sightline-http.socket.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/sightline-http.socket.tmp
	mv -f $(DESTDIR)$(UNITDIR)/sightline-http.socket.tmp $(DESTDIR)$(UNITDIR)/sightline-http.socket

install-user:
	$(INSTALL) -d $(DESTDIR)$(SYSUSERSDIR)
	$(INSTALL) -m 0644 systemd/sightline.sysusers $(DESTDIR)$(SYSUSERSDIR)/sightline.conf
	@if ! command -v systemd-sysusers >/dev/null 2>&1; then \
		echo "make: systemd-sysusers not found; the user 'sightline' is created at the next boot"; \
	elif [ -n "$(DESTDIR)" ] && [ ! -e $(DESTDIR)/etc/passwd ]; then \
		echo "make: $(DESTDIR) has no /etc/passwd; the user 'sightline' is created when it boots (systemd-sysusers)"; \
	else \
		echo "systemd-sysusers $(if $(DESTDIR),--root=$(DESTDIR)) sightline.conf"; \
		systemd-sysusers $(if $(DESTDIR),--root=$(DESTDIR)) $(DESTDIR)$(SYSUSERSDIR)/sightline.conf; \
	fi

install-config:
	$(INSTALL) -d $(DESTDIR)$(SYSCONFDIR)/sightline
	@if [ -e $(DESTDIR)$(CONFIG) ]; then \
		echo "make: keeping the existing $(DESTDIR)$(CONFIG)"; \
	else \
		echo "install configs/sightline.yaml -> $(DESTDIR)$(CONFIG)"; \
		sed -e 's|/usr/local/share/|$(DATADIR)/|g' configs/sightline.yaml > $(DESTDIR)$(CONFIG).tmp && \
		chmod 0644 $(DESTDIR)$(CONFIG).tmp && mv -f $(DESTDIR)$(CONFIG).tmp $(DESTDIR)$(CONFIG); \
	fi

install-model:
	@for f in $(MODEL_FILES); do \
		test -s $(MODEL_SRC)/$$f || { echo "make: $(MODEL_SRC)/$$f is missing; run scripts/setup.sh" >&2; exit 1; }; \
	done
	$(INSTALL) -d $(DESTDIR)$(MODEL_DIR)
	$(INSTALL) -m 0644 $(addprefix $(MODEL_SRC)/,$(MODEL_FILES)) $(DESTDIR)$(MODEL_DIR)/

install-docs:
	$(INSTALL) -d $(DESTDIR)$(DOC_DIR)
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOC_DIR)/

install: install-bin install-units install-user install-config install-model install-docs
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then \
		systemctl daemon-reload; \
		echo "Installed. Edit $(CONFIG), then: systemctl enable --now sightline.service"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sightline
	rm -f $(DESTDIR)$(UNITDIR)/sightline.service $(DESTDIR)$(UNITDIR)/sightline.socket $(DESTDIR)$(UNITDIR)/sightline-http.socket
	rm -f $(DESTDIR)$(SYSUSERSDIR)/sightline.conf
	rm -f $(addprefix $(DESTDIR)$(MODEL_DIR)/,$(MODEL_FILES))
	rm -f $(addprefix $(DESTDIR)$(DOC_DIR)/,$(notdir $(DOCS)))
	-rmdir $(DESTDIR)$(MODEL_DIR) $(DESTDIR)$(DATADIR)/sightline/models $(DESTDIR)$(DATADIR)/sightline $(DESTDIR)$(DOC_DIR) 2>/dev/null
	@if [ -e $(DESTDIR)$(CONFIG) ]; then echo "make: kept $(DESTDIR)$(CONFIG); remove it by hand if no longer wanted"; fi
	@echo "make: kept the user 'sightline' (userdel sightline removes it)"
