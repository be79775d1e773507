# apikeys -- API keys for PostgreSQL
#
#   make demo    install what is missing, build, and show the main job on a throwaway cluster
#   make test    install what is missing, build, and run every test suite
#   make bench   pgbench benchmarks, ~25 min (not part of make test; BENCH_ARGS=--quick: ~6 min check)
#   make installcheck   (PGXS) the pg_regress, isolation and TAP suites against your running
#                server, with the extension installed; passes with and without preloading

EXTENSION   = apikeys
EXTVERSION  = $(shell sed -n "s/^default_version[[:space:]]*=[[:space:]]*'\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big  = apikeys
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA        = $(wildcard $(EXTENSION)--*.sql)
PGFILEDESC  = "apikeys - API key issuance, verification and row-level security"
PG_CPPFLAGS = -I$(srcdir)/src

REGRESS        = init token scopes create_key verify lifecycle handoff claim_proxy outbox policies audit usage owner_limits \
                 hygiene authenticate context rls postgrest postgrest_tenant forwarded selfservice escalation privileges security \
                 security_inventory security_edges stats verification import upgrade cleanup
REGRESS_OPTS   = --inputdir=. --load-extension=pgcrypto
ISOLATION      = key_cap_race revoke_vs_verify rotate_no_grace cache_invalidation concurrent_rollup revoke_all_vs_create \
                 claim_race claim_guess outbox_take_race selfservice_revoke_race selfservice_cap_race scope_set_vs_verify \
                 owner_limit_change report_leaked_race unused_vs_rollup import_flag_change
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

# print-VAR: lets test/run.sh read REGRESS and ISOLATION from this file.
print-%:
	@echo $($*)
