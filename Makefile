# apikeys -- API keys for PostgreSQL
#
#   make demo    install what is missing, build, and show the main job on a throwaway cluster
#   make test    install what is missing, build, and run every test suite
#   make dist    the release tarball of HEAD (apikeys-<version>.tar.gz, and a .zip for PGXN)
#   make bench   pgbench benchmarks, ~25 min (not part of make test; BENCH_ARGS=--quick: ~6 min check)
#   make installcheck   (PGXS) the pg_regress, isolation and TAP suites against your running
#                server, with the extension installed; passes with and without preloading

EXTENSION   = apikeys
EXTVERSION  = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big  = apikeys
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA        = $(sort $(wildcard $(EXTENSION)--*.sql) $(EXTENSION)--$(EXTVERSION).sql)
PGFILEDESC  = "apikeys - API key issuance, verification and row-level security"
PG_CPPFLAGS = -I$(srcdir)/src

REGRESS        = init token scopes create_key verify lifecycle handoff claim_proxy outbox policies audit usage owner_limits \
                 hygiene authenticate context rls postgrest postgrest_tenant forwarded selfservice escalation privileges security \
                 security_inventory security_edges probefix probefix3 stats verification import prefixes derived credits surface upgrade probefix4 cleanup
REGRESS_OPTS   = --inputdir=test --load-extension=pgcrypto
ISOLATION      = key_cap_race revoke_vs_verify rotate_no_grace cache_invalidation concurrent_rollup revoke_all_vs_create \
                 claim_race claim_guess outbox_take_race selfservice_revoke_race selfservice_cap_race scope_set_vs_verify \
                 owner_limit_change report_leaked_race unused_vs_rollup import_flag_change credits_race
ISOLATION_OPTS = --inputdir=test/isolation
TAP_TESTS      = 1
PROVE_TESTS   ?= test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies (unless the server was configured with
# --enable-depend): rebuild every object when one of our headers changes, so
# a merged header change can never meet stale objects
$(OBJS): $(wildcard $(srcdir)/src/*.h)

# secret.c calls OpenSSL's EVP API directly when PostgreSQL uses OpenSSL
SHLIB_LINK += $(filter -lcrypto, $(LIBS))

# The install script of the current version is generated: the section files
# of sql/install/ (the readable source, each object with its grants and
# comment) concatenated in name order.  A released version's script never
# changes (sql/released.sha256, checked by make test): a change of the SQL
# surface goes into a new version with an upgrade script.
# tools/split-install-script.py made the sections from the one-file script.
INSTALL_SECTIONS = $(sort $(wildcard $(srcdir)/sql/install/*.sql))
all: $(EXTENSION)--$(EXTVERSION).sql
$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_SECTIONS)
	@$(srcdir)/tools/build-install-script.sh $@ $(INSTALL_SECTIONS)

# Everything below drives the throwaway clusters; see test/run.sh.
.PHONY: test demo bench deps fuzz check-memory indent

deps:
	@test/deps.sh

test: deps
	@test/run.sh

demo: deps
	@test/demo.sh

bench: deps
	@bench/run.sh $(BENCH_ARGS)

# PostgreSQL's layout (pgindent's pg_bsd_indent options) for src/; make test checks it
indent: deps
	@test/indent.sh

# libFuzzer + ASan targets for the token and scope parsers (FUZZ_SECONDS=60 each)
fuzz:
	@fuzz/run.sh

# the pg_regress suite with every backend under valgrind memcheck
check-memory: deps
	@test/check-memory.sh

# make dist: the release tarball (and the zip PGXN takes) a packager builds
# from: what is committed at HEAD, named for META.json's version, which
# test/install-script.sh keeps equal to default_version.
DISTVERSION = $(shell sed -n 's/^   "version": "\(.*\)",$$/\1/p' $(srcdir)/META.json)
.PHONY: dist
dist:
	git -C $(srcdir) archive --format=tar.gz --prefix=$(EXTENSION)-$(DISTVERSION)/ -o $(CURDIR)/$(EXTENSION)-$(DISTVERSION).tar.gz HEAD
	git -C $(srcdir) archive --format=zip --prefix=$(EXTENSION)-$(DISTVERSION)/ -o $(CURDIR)/$(EXTENSION)-$(DISTVERSION).zip HEAD
	@echo "$(EXTENSION)-$(DISTVERSION).tar.gz and .zip: HEAD as committed"

# print-VAR: lets test/run.sh read REGRESS and ISOLATION from this file.
print-%:
	@echo $($*)
