# SPDX-License-Identifier: MIT
# epochfs top-level Makefile.  On a fresh clone, `make` (or `make check`,
# `make demo`) installs missing Debian packages, runs autoconf and configure,
# then builds.  B=DIR builds out of tree (the sanitizer build uses it).

-include config.mk

B ?= .
PREFIX ?= /usr/local
CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-missing-field-initializers
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) -I. -DEPOCHFS_VERSION=\"$(VERSION)\" $(FEATURE_DEFS)
O = $(B)/obj
Q = $(if $(V),,@)

# The core library is every source below fs/ (the base layer, the backends,
# the cache); fs/ minus main.c is a second library the unit tests also link.
CORE_SRC = $(sort $(wildcard backends/base/*.c backends/*.c cache/*.c))
FS_SRC = $(sort $(wildcard fs/*.c))
UNIT_TESTS = $(notdir $(basename $(wildcard tests/check_*.c)))
TOOLS = $(patsubst tools/%.c,epochfs-%,$(wildcard tools/*.c))

CORE_OBJ = $(CORE_SRC:%.c=$(O)/%.o)
LIBCORE = $(B)/libepochfs-core.a
FSLIB_OBJ = $(patsubst %.c,$(O)/%.o,$(filter-out fs/main.c,$(FS_SRC)))
LIBFS = $(B)/libepochfs-fs.a
TEST_BINS = $(addprefix $(B)/tests/,$(UNIT_TESTS))

.SECONDARY:

.PHONY: all check unit demo bench bench-remote bench-subst install clean distclean asan tsan valgrind

all: $(B)/epochfs $(addprefix $(B)/,$(TOOLS))

config.mk: configure.ac config.mk.in
	sh tools/install-deps.sh build
	autoconf -f
	./configure --quiet

$(O)/%.o: %.c config.mk
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) $(CORE_CFLAGS) $(FUSE_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(LIBCORE): $(CORE_OBJ)
	rm -f $@
	$(Q)ar rcs $@ $^

$(LIBFS): $(FSLIB_OBJ)
	rm -f $@
	$(Q)ar rcs $@ $^

$(B)/epochfs: $(O)/fs/main.o $(LIBFS) $(LIBCORE)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(FUSE_LIBS) $(CORE_LIBS)

$(B)/epochfs-%: $(O)/tools/%.o $(LIBCORE)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(CORE_LIBS)

$(B)/tests/%: $(O)/tests/%.o $(LIBFS) $(LIBCORE)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(CHECK_LIBS) $(FUSE_LIBS) $(CORE_LIBS)

tests: all $(TEST_BINS)

# The whole suite: unit tests, then integration tests that really mount.
check: tests
	sh tools/install-deps.sh test
	B=$(B) sh tests/run.sh

unit: all $(TEST_BINS)
	B=$(B) sh tests/run.sh --unit

demo: all
	B=$(B) sh tools/demo.sh

bench: all
	sh tools/install-deps.sh bench
	B=$(B) sh tools/bench.sh

# Remote benchmarks: nginx behind the latency proxy (docs/benchmarks-remote.md).
bench-remote: all
	sh tools/install-deps.sh bench
	B=$(B) bash tools/bench-remote.sh

# Substitution through a bandwidth-capped backend (docs/benchmarks.md).
bench-subst: all
	sh tools/install-deps.sh bench
	B=$(B) bash tools/bench-subst.sh

# A dataset bigger than RAM: reader and daemon in a 256 MiB memory cgroup
# (issue 14; docs/benchmarks.md).  QUICK=1 for a short run.
.PHONY: bench-ram
bench-ram: all
	sh tools/install-deps.sh bench
	B=$(B) bash tools/bench-ram.sh

# Four daemons serving each other's caches, world 4, 10 ms origin (issue 13;
# docs/benchmarks-remote.md).  QUICK=1 for a short run.
.PHONY: bench-peers
bench-peers: all
	sh tools/install-deps.sh bench
	B=$(B) bash tools/bench-peers.sh

# ASan+UBSan build of everything, then the whole suite against it.
asan:
	$(MAKE) B=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

# ThreadSanitizer build of the unit tests (the daemon's threads under a
# real cache, the fetch engine, the parallel listing), run with it.
tsan:
	$(MAKE) B=build-tsan CFLAGS="-O1 -g -fsanitize=thread -fno-omit-frame-pointer" unit

valgrind: all $(TEST_BINS)
	B=$(B) sh tests/run.sh --unit --valgrind

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/sbin
	install -m 755 $(B)/epochfs $(B)/epochfs-stat $(wildcard $(B)/epochfs-ctl) $(DESTDIR)$(PREFIX)/bin/
	if [ -d docs/man ]; then install -m 644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/; fi
	@# mount(8) runs /sbin/mount.fuse.<type> with no PATH: the helper names this prefix's daemon (MOUNT_HELPER_DIR=DIR puts it elsewhere)
	install -d $(DESTDIR)$(or $(MOUNT_HELPER_DIR),/sbin) && sed 's|@BINDIR@|$(PREFIX)/bin|' tools/mount.fuse.epochfs >$(DESTDIR)$(or $(MOUNT_HELPER_DIR),/sbin)/mount.fuse.epochfs && chmod 755 $(DESTDIR)$(or $(MOUNT_HELPER_DIR),/sbin)/mount.fuse.epochfs
	@# the Python package (tools/python/epochfs) where the system python3 looks under PREFIX: Debian's lib/python3.X/dist-packages, else site-packages (PYTHON_DIR=DIR puts it elsewhere)
	d='$(PYTHON_DIR)'; py=$$(command -v /usr/bin/python3 || command -v python3); \
	if [ -z "$$d" ] && [ -n "$$py" ]; then d=$$($$py -c 'import sys; print("$(PREFIX)/lib/python%d.%d/%s" % (sys.version_info[:2] + ("dist-packages" if any(p.endswith("/dist-packages") for p in sys.path) else "site-packages",)))'); fi; \
	if [ -n "$$d" ]; then install -d $(DESTDIR)$$d/epochfs && install -m 644 tools/python/epochfs/*.py $(DESTDIR)$$d/epochfs/; else echo "no python3: the Python package (tools/python/epochfs) is not installed"; fi

clean:
	rm -rf $(B)/obj $(TEST_BINS) build-asan build-tsan $(LIBCORE) $(LIBFS) $(B)/epochfs $(addprefix $(B)/,$(TOOLS))

distclean: clean
	rm -rf config.mk config.h config.log config.status configure autom4te.cache

-include $(shell find $(O) -name '*.d' 2>/dev/null)
