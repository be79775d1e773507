# test/t/030_standby_failover.pl
#
# Scale-out with streaming replication: keys are issued and revoked on the
# primary and verified on a hot standby; after a failover (promotion) the
# former standby holds every key, revocation, owner policy, RLS policy and
# audit row, and issues keys itself.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql(
	'postgres', q{
CREATE EXTENSION apikeys;
CREATE ROLE app LOGIN IN ROLE apikeys_verifier;
CREATE TABLE public.docs (id int PRIMARY KEY, owner text NOT NULL, body text);
GRANT SELECT, INSERT ON public.docs TO app;
INSERT INTO public.docs VALUES (1, 'acme', 'acme doc'), (2, 'globex', 'globex doc');
SELECT apikeys.protect('public.docs', 'owner');
SELECT apikeys.set_owner_policy('acme', 10, '90 days');
});

sub issue { return issue_key(@_); }
sub code
{
	my ($node, $token, $scope) = @_;
	return verify_code($node, $token, $scope, extra_params => [ '-U', 'app' ]);
}

my ($a1, $ta1) = issue($primary, 'acme', 'acme 1');
my ($a2, $ta2) = issue($primary, 'acme', 'acme 2');
my ($a3, $ta3) = issue($primary, 'acme', 'acme 3');
my ($g1, $tg1) = issue($primary, 'globex', 'globex 1', "ARRAY['docs:read', 'docs:create']");

my $standby = start_standby($primary, 'standby');

# keys issued after the base backup reach the standby by streaming
my ($g2, $tg2) = issue($primary, 'globex', 'globex 2');
$primary->wait_for_catchup($standby, 'replay');

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');
is(code($standby, $ta1), 'VALID', 'a key issued before the backup verifies on the standby');
is(code($standby, $tg2), 'VALID', 'a key issued after the backup verifies on the standby');
is(code($standby, $tg1, 'docs:create'), 'VALID', 'scopes are checked on the standby');
is(code($standby, $ta1, 'docs:delete'), 'INSUFFICIENT_SCOPE', '... and refused there');
# change the last character (a checksum digit) to another one
my $forged = substr($ta1, 0, -1) . (substr($ta1, -1) eq 'x' ? 'y' : 'x');
is(code($standby, $forged), 'MALFORMED', 'a forged token is MALFORMED on the standby');

# authenticate + RLS on the standby, in a read-only transaction
is( $standby->safe_psql(
		'postgres', "BEGIN READ ONLY; SELECT (apikeys.authenticate('$ta1')).code;
		SELECT string_agg(body, ',') FROM public.docs; COMMIT;",
		extra_params => [ '-U', 'app' ]),
	"VALID\nacme doc",
	'authenticate and RLS work on the standby');
# and pre_request (PostgREST reads from replicas too)
is( $standby->safe_psql(
		'postgres', qq{BEGIN; SELECT set_config('request.headers', '{"x-api-key": "$tg1"}', true);
		SELECT apikeys.pre_request(); SELECT apikeys.current_owner(); COMMIT;},
		extra_params => [ '-U', 'app' ]),
	"{\"x-api-key\": \"$tg1\"}\n\nglobex",
	'pre_request works on the standby');

# issuing on the standby is refused (read-only), nothing half-done
my ($rc, $out, $err) = $standby->psql('postgres',
	"SELECT apikeys.create_key('acme', 'on standby', ARRAY['docs:read'])");
isnt($rc, 0, 'create_key fails on the standby');
like($err, qr/read-only transaction/, '... as a read-only transaction');

# a revocation, a disable and a rotation on the primary are seen after replay
$primary->safe_psql('postgres', "SELECT apikeys.revoke_key('$a2', 'leaked')");
$primary->safe_psql('postgres', "SELECT apikeys.disable_key('$a3')");
my $ta1_new = $primary->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$a1')");
$primary->wait_for_catchup($standby, 'replay');
is(code($standby, $ta2), 'REVOKED', 'a revocation on the primary is seen on the standby after replay');
is(code($standby, $ta3), 'DISABLED', 'a disable on the primary is seen on the standby');
is(code($standby, $ta1), 'NOT_FOUND', 'a rotated-away secret fails on the standby');
is(code($standby, $ta1_new), 'VALID', 'the new secret verifies on the standby');

# report_leaked on the standby is no oracle: one error, the same for a live
# token, a revoked one, a rotated-away one and junk (it used to fail only
# for a live token, trying to lock the key's row)
my %leak;
for my $t ($ta1_new, $ta2, $ta1, 'ak_junk')
{
	my ($lrc, $lout, $lerr) = $standby->psql('postgres',
		"SELECT apikeys.report_leaked('$t')",
		extra_params => [ '-U', 'app', '-v', 'VERBOSITY=verbose' ]);
	$lerr =~ s/LOCATION:.*//s;
	$leak{"$lrc $lerr"}++;
}
is(scalar(keys %leak), 1, 'report_leaked answers the same for every token on the standby');
like((keys %leak)[0], qr/^3 (psql:<stdin>:1: )?ERROR:  25006: cannot report a leaked token in a read-only transaction/,
	'... a read-only error before the token is looked at');
is(code($standby, $ta1_new), 'VALID', '... and the live key stays valid');

my $audit_primary = $primary->safe_psql('postgres',
	'SELECT count(*), max(id), md5(string_agg(id || event || coalesce(client_id, \'\') || detail::text, \',\' ORDER BY id)) FROM apikeys.audit_log');
my $keys_primary = $primary->safe_psql('postgres',
	"SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) FROM apikeys.keys k");

# failover
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion did not finish';

is( $standby->safe_psql('postgres',
		'SELECT count(*), max(id), md5(string_agg(id || event || coalesce(client_id, \'\') || detail::text, \',\' ORDER BY id)) FROM apikeys.audit_log'),
	$audit_primary, 'after promotion: every audit row is there, identical');
is( $standby->safe_psql('postgres', "SELECT md5(string_agg((to_jsonb(k) - 'last_used_at')::text, ',' ORDER BY client_id)) FROM apikeys.keys k"),
	$keys_primary, 'after promotion: every key row is there, identical (last_used_at aside: verification may write it)');
is(code($standby, $ta2), 'REVOKED', 'after promotion: the revocation holds');
is(code($standby, $ta3), 'DISABLED', 'after promotion: the disable holds');
is(code($standby, $ta1_new), 'VALID', 'after promotion: keys verify');
is( $standby->safe_psql('postgres', "SELECT max_keys || ' ' || max_lifetime FROM apikeys.owner_policies WHERE owner = 'acme'"),
	'10 90 days', 'after promotion: the owner policy holds');
is( $standby->safe_psql('postgres',
		"SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy WHERE polrelid = 'public.docs'::regclass"),
	'apikeys_create,apikeys_delete,apikeys_read,apikeys_update',
	'after promotion: the RLS policies of the protected table hold');

# issuing, changing and auditing work on the promoted server
my ($n1, $tn1) = issue($standby, 'acme', 'after failover');
is(code($standby, $tn1), 'VALID', 'create_key works on the promoted standby');
$standby->safe_psql('postgres', "SELECT apikeys.revoke_key('$a1')");
is(code($standby, $ta1_new), 'REVOKED', 'revoke_key works on the promoted standby');
is( $standby->safe_psql('postgres',
		"SELECT string_agg(event, ',' ORDER BY id) FROM apikeys.audit_log WHERE client_id IN ('$n1', '$a1')"),
	'created,rotated,created,revoked', 'the promoted server appends to the same audit trail');
is( $standby->safe_psql('postgres',
		"BEGIN; SELECT (apikeys.authenticate('$tn1', 'docs:read')).code; SELECT count(*) FROM public.docs; COMMIT;",
		extra_params => [ '-U', 'app' ]),
	"VALID\n1", 'RLS with a new key on the promoted server');

$standby->stop;
done_testing();
