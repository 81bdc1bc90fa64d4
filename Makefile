# pw -- proxy-pool toolkit.
#
#   make            build build/pw and build/libpw.a
#   make test       build, run the unit tests and the bats suite
#   make sanitize   the whole suite under ASan + UBSan
#   make demo       pw's main job, end to end, on loopback
#   make bench      speed and memory beside baselines
#   make fuzz       libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make valgrind   the unit tests under valgrind memcheck
#   make soak       pw serve and the gateway under load, SOAK_SECONDS
#                   (default 600): crashes, locks, RSS and fd growth
#   make install    PREFIX=/usr/local DESTDIR= (systemd units: SYSTEMDDIR)
#   make deps       install the Debian packages the build and tests need

PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
MANDIR		?= $(PREFIX)/share/man
DATADIR		?= $(PREFIX)/share/pw
INCLUDEDIR	?= $(PREFIX)/include
BASHCOMPDIR	?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR	?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR	?= $(PREFIX)/share/fish/vendor_completions.d
SYSTEMDDIR	?= $(PREFIX)/lib/systemd/system
UNITS		= pw-serve.service pw-health.service pw-health.timer \
		  pw-warm.service pw-warm.timer

B		?= build
CC		?= cc
PKG_CONFIG	?= pkg-config
CFLAGS		?= -O2 -g
SANFLAGS	?=
WARN		= -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
		  -Wmissing-prototypes -Wno-missing-field-initializers
PW_CFLAGS	= -std=c11 -D_GNU_SOURCE $(WARN) $(SANFLAGS) \
		  $(shell $(PKG_CONFIG) --cflags sqlite3 libsodium libcurl \
		    libmicrohttpd libcjson)

# SQLite, libsodium and hiredis are linked statically into pw: the
# dynamic loader is most of a short command's start-up time (see
# bench/startup).
STATIC_CORE	?= 1
ifeq ($(STATIC_CORE),1)
CORE_LIBS	= -Wl,-Bstatic -lsqlite3 -lsodium -lhiredis -Wl,-Bdynamic -lm -lz \
		  -lpthread -ldl
else
CORE_LIBS	= $(shell $(PKG_CONFIG) --libs sqlite3 libsodium hiredis) -lm
endif

# libcurl is not linked: lib/net.c loads it when a request is to be made
# (its headers are needed to build, the library only to fetch). Nor are
# libmicrohttpd and cJSON: lib/httpd.c loads them when they are needed.
LIB		= err proxy crypto store config pool strategy session view net \
		  fetch health ingest cache download httpd service delegate auth \
		  ssrf assets api housekeep ratelimit wire gateway
CMD		= pw args out pool config fetch health cache serve

LIB_OBJS	= $(LIB:%=$(B)/obj/lib/%.o)
CMD_OBJS	= $(CMD:%=$(B)/obj/cmd/%.o)
HDRS		= lib/pw.h lib/pw-strategy.h lib/internal.h lib/net.h lib/httpd.h \
		  lib/ratelimit.h lib/delegate.h lib/wire.h cmd/cmd.h

UNIT_TESTS	= $(patsubst tests/unit/%.c,$(B)/unit/%,$(wildcard tests/unit/*.c))
FUZZ_TARGETS	= $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS	?= 60

all: $(B)/pw $(B)/libpw.a

$(B)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PW_CFLAGS) -c -o $@ $<

$(B)/libpw.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/pw: $(CMD_OBJS) $(B)/libpw.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $(CMD_OBJS) $(B)/libpw.a \
	    $(CORE_LIBS)

$(B)/unit/%: tests/unit/%.c $(B)/libpw.a $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PW_CFLAGS) -Wno-unused-parameter \
	    -o $@ $< $(B)/libpw.a -lcmocka $(CORE_LIBS)

units: $(UNIT_TESTS)

# What pw serve serves from share/, built in as byte arrays. The file is
# committed (the fuzz targets build lib/*.c as they are) and made again
# whenever one of these changes.
ASSETS		= openapi:share/openapi.json docs_html:share/docs.html \
		  docs_js:share/docs.js docs_css:share/docs.css
lib/assets.c: share/openapi.json share/docs.html share/docs.js \
    share/docs.css Makefile
	@{ echo '/* assets.c -- made by make from share/: do not edit. */'; \
	  echo '#include "internal.h"'; \
	  for a in $(ASSETS); do \
	    n=$${a%%:*}; f=$${a#*:}; \
	    echo ""; echo "const char pw_asset_$$n[] = {"; \
	    od -An -v -tx1 "$$f" | awk '{ for (i = 1; i <= NF; i++) { \
	      printf "%s0x%s,", n % 10 == 0 ? (n ? "\n\t" : "\t") : " ", \
	      $$i; n++ } } END { if (n) print "" }'; \
	    echo "	0x00"; echo "};"; \
	    echo "const size_t pw_asset_$${n}_len = $$(wc -c <"$$f");"; \
	  done; } >$@.tmp && mv $@.tmp $@

# Strategy plugins the tests load: built against the installed header
# layout (<pw/pw-strategy.h>), like a third party would.
PLUGINS		= $(patsubst tests/plugins/%.c,$(B)/plugins/%.so,$(wildcard tests/plugins/*.c))
$(B)/include/pw/pw-strategy.h: lib/pw-strategy.h
	@mkdir -p $(@D)
	cp $< $@
$(B)/plugins/%.so: tests/plugins/%.c $(B)/include/pw/pw-strategy.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -std=c11 $(WARN) -shared -fPIC -I$(B)/include \
	    -o $@ $<
plugins: $(PLUGINS)

# The one test command: unit tests, then the bats suite; the last line
# reads "N passed, N failed".
test: need-deps all units plugins
	@PW_BUILD=$(abspath $(B)) tests/run

SAN		= -fsanitize=address,undefined -fno-sanitize-recover=all \
		  -fno-omit-frame-pointer
sanitize: need-deps
	$(MAKE) B=build/asan SANFLAGS="$(SAN)" CFLAGS="-O1 -g" all units \
	    plugins
	@PW_BUILD=$(abspath build/asan) \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1 tests/run

$(B)/fuzz/%: tests/fuzz/%.c $(wildcard lib/*.c) $(HDRS)
	@mkdir -p $(@D)
	clang -g -O1 -std=c11 -D_GNU_SOURCE \
	    -fsanitize=fuzzer,address,undefined \
	    $(shell $(PKG_CONFIG) --cflags sqlite3 libsodium libcurl libcjson) \
	    -o $@ $< $(LIB:%=lib/%.c) \
	    $(shell $(PKG_CONFIG) --libs sqlite3 libsodium libcjson hiredis) \
	    -lm -ldl

fuzz: need-deps $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
	    name=$$(basename $$t); corpus=tests/fuzz/corpus/$${name#fuzz_}; \
	    mkdir -p $(B)/fuzz/work/$$name; \
	    echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
	    $$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	        -artifact_prefix=$(B)/fuzz/$$name- \
	        -print_final_stats=1 $(B)/fuzz/work/$$name $$corpus \
	        2>&1 | tail -n 12 || exit 1; \
	done

# Memcheck over every unit test: no error and no byte definitely lost
# (what a library keeps until exit is "still reachable", not a leak).
VALGRIND	= valgrind --quiet --leak-check=full \
		  --errors-for-leak-kinds=definite --error-exitcode=1
valgrind: need-deps units
	@mkdir -p $(B)/valgrind; fail=0; \
	for t in $(UNIT_TESTS); do \
	    name=$$(basename $$t); log=$(B)/valgrind/$$name.log; \
	    if $(VALGRIND) $$t >$$log 2>&1; then \
	        echo "valgrind: $$name ok"; \
	    else \
	        echo "valgrind: $$name FAILED"; cat $$log; fail=1; \
	    fi; \
	done; exit $$fail

# Not part of test: SOAK_SECONDS (default 600) of load on one state file.
soak: need-deps all
	@PW_BUILD=$(abspath $(B)) bench/soak

demo: need-deps all
	@PW_BUILD=$(abspath $(B)) share/demo.sh

$(B)/bench-select: bench/select.c $(B)/libpw.a $(HDRS)
	$(CC) $(CFLAGS) $(PW_CFLAGS) -o $@ $< $(B)/libpw.a $(CORE_LIBS)

$(B)/bench-rlcheck: bench/rlcheck.c $(B)/libpw.a $(HDRS)
	$(CC) $(CFLAGS) $(PW_CFLAGS) -o $@ $< $(B)/libpw.a $(CORE_LIBS)

$(B)/bench-insert: bench/insert.c
	$(CC) $(CFLAGS) $(PW_CFLAGS) -o $@ $< $(CORE_LIBS)

bench: need-deps all $(B)/bench-select $(B)/bench-rlcheck $(B)/bench-insert
	@PW_BUILD=$(abspath $(B)) bench/run

check-style:
	@tests/check-style

need-deps:
	@tests/helpers/deps.sh --check || $(MAKE) deps

deps:
	tests/helpers/deps.sh --install

install: all
	install -d $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(DATADIR) $(DESTDIR)$(INCLUDEDIR)/pw \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) \
	    $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(SYSTEMDDIR)
	install -m 755 $(B)/pw $(DESTDIR)$(BINDIR)/pw
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	for f in man/*.7; do [ -e "$$f" ] || continue; \
	    install -m 644 $$f $(DESTDIR)$(MANDIR)/man7/; done
	install -m 644 completions/pw.bash $(DESTDIR)$(BASHCOMPDIR)/pw
	install -m 644 completions/_pw $(DESTDIR)$(ZSHCOMPDIR)/_pw
	install -m 644 completions/pw.fish $(DESTDIR)$(FISHCOMPDIR)/pw.fish
	cp -R share/. $(DESTDIR)$(DATADIR)/
	# The units go where systemd looks, with the binary's path in them.
	rm -rf $(DESTDIR)$(DATADIR)/systemd
	for u in $(UNITS); do \
	    sed 's|@BINDIR@|$(BINDIR)|g' share/systemd/$$u \
	        >$(DESTDIR)$(SYSTEMDDIR)/$$u && \
	    chmod 644 $(DESTDIR)$(SYSTEMDDIR)/$$u || exit 1; \
	done
	for h in lib/pw-strategy.h; do [ -e "$$h" ] || continue; \
	    install -m 644 $$h $(DESTDIR)$(INCLUDEDIR)/pw/; done

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pw
	for f in man/*.1; do rm -f $(DESTDIR)$(MANDIR)/man1/$${f#man/}; done
	for f in man/*.7; do [ -e "$$f" ] || continue; \
	    rm -f $(DESTDIR)$(MANDIR)/man7/$${f#man/}; done
	rm -f $(DESTDIR)$(BASHCOMPDIR)/pw $(DESTDIR)$(ZSHCOMPDIR)/_pw \
	    $(DESTDIR)$(FISHCOMPDIR)/pw.fish
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(INCLUDEDIR)/pw
	for u in $(UNITS); do rm -f $(DESTDIR)$(SYSTEMDDIR)/$$u; done

clean:
	rm -rf build

.PHONY: all units plugins test sanitize fuzz valgrind soak demo bench \
	check-style need-deps deps install uninstall clean
