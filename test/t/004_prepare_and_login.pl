# Cases the pg_regress suite cannot hold, because `make installcheck` runs it
# against a stock server (max_prepared_transactions = 0, peer
# authentication, apikeys preloaded or not):
# - PREPARE TRANSACTION ends the identity authenticate() set, and COMMIT
#   PREPARED brings none back (was sql/context.sql);
# - PREPARE TRANSACTION of a transaction that changed a key is refused, and
#   the change never happened (was sql/usage.sql);
# - per-role defaults of request.* (ALTER ROLE ... SET) apply at login and
#   forge no identity (was sql/context.sql: a login as another role).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('prepare_login', conf => "max_prepared_transactions = 5\n", create => q{
CREATE EXTENSION apikeys;
CREATE ROLE regress_nobody LOGIN;
GRANT apikeys_verifier TO regress_nobody;
});
my ($cid, $tok) = issue_key($node, 'regress_ctx', 'ctx', "ARRAY['notes:read']");

# PREPARE TRANSACTION: the identity goes with the transaction
my $who = q{COALESCE(apikeys.current_client_id(), 'NULL') || ' / ' || COALESCE(apikeys.current_owner(), 'NULL')
            || ' / ' || apikeys.has_scope('notes:read')::text};
my (undef, $out) = $node->psql('postgres', qq{
BEGIN;
SELECT code FROM apikeys.authenticate('$tok');
SELECT 'before: ' || $who;
PREPARE TRANSACTION 'regress_ctx_prepare';
SELECT 'after_prepare: ' || $who;
SELECT 'prepared: ' || gid FROM pg_prepared_xacts WHERE gid = 'regress_ctx_prepare';
COMMIT PREPARED 'regress_ctx_prepare';
SELECT 'after_commit_prepared: ' || $who;
});
is($out, join("\n", 'VALID', "before: $cid / regress_ctx / true",
		'after_prepare: NULL / NULL / false', 'prepared: regress_ctx_prepare',
		'after_commit_prepared: NULL / NULL / false'),
	'PREPARE TRANSACTION ends the identity; COMMIT PREPARED brings none back');

# PREPARE TRANSACTION after changing a key is refused (the cache must see
# the change when it commits); the disable never happened
my ($rc, $stdout, $stderr) = $node->psql('postgres', qq{
\\set VERBOSITY verbose
BEGIN;
SELECT apikeys.disable_key('$cid');
PREPARE TRANSACTION 'usage_test';
});
like($stderr, qr/0A000: cannot prepare a transaction that changed API keys/,
	'PREPARE TRANSACTION of a key change is refused with 0A000');
like($stderr, qr/The verification cache must see the change when it commits\./, 'with its detail');
is(sq($node, qq{SELECT (apikeys.verify('$tok')).code || ' '
	|| (SELECT count(*) FROM pg_prepared_xacts)}), 'VALID 0',
	'the refused transaction changed nothing and left nothing prepared');

# per-role defaults apply at login and forge nothing
sq($node,
	q{ALTER ROLE regress_nobody SET request.jwt.claims = '{"sub":"regress_ctx","role":"regress_nobody"}'});
(undef, $out) = $node->psql('postgres', qq{
SELECT current_user, current_setting('request.jwt.claims');
SELECT $who;
}, extra_params => [ '-U', 'regress_nobody' ]);
is($out, qq{regress_nobody|{"sub":"regress_ctx","role":"regress_nobody"}\nNULL / NULL / false},
	'claims from ALTER ROLE ... SET reach the session at login and forge no identity');

$node->stop;
done_testing();
