# Only a VALID answer uses anything up (src/verify.c, JudgeLimits), under
# concurrency: four pgbench clients hammer three keys of one owner whose
# owner-wide window allows 20 requests an hour:
#   - "empty": no credits left and its own limit of 3 an hour (every answer
#     is a refusal: USAGE_EXCEEDED, or RATE_LIMITED while concurrent
#     refusals hold their slots for an instant);
#   - "low": 5 credits;
#   - "plain": neither credits nor a limit of its own;
# while an admin session sets "empty"'s balance to 0 again and changes "low"'s name.
#   1. the owner's window gives exactly its 20 requests, all to VALID
#      answers (refusals of "empty" give their slots back);
#   2. "empty" is never VALID, "low" at most 5 times, and its balance is 5
#      minus its VALID answers;
#   3. rate_remaining never leaves [0, limit];
#   4. afterwards "empty" still has its whole own window: topped up, it gets
#      3 VALID (then the owner's full window refuses it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('limits_load', conf => "log_statement = none\n");
$node->safe_psql('postgres', q{
	SELECT apikeys.set_owner_policy('acme', rate_limit => 20, rate_window => '1 hour');
	CREATE TABLE tok AS
	SELECT 'empty' AS which, (apikeys.create_key('acme', 'empty', '{api:read}', credits => 0,
	                            rate_limit => 3, rate_window => '1 hour')).token
	UNION ALL SELECT 'low', (apikeys.create_key('acme', 'low', '{api:read}', credits => 5)).token
	UNION ALL SELECT 'plain', (apikeys.create_key('acme', 'plain', '{api:read}')).token;
	CREATE TABLE answers (which text, code text, rate_remaining int, rate_limit int);
	GRANT SELECT ON tok TO PUBLIC});

my $script = $node->basedir . '/hammer.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set k random(1, 3)\n"
	  . "INSERT INTO answers SELECT which, (v).code, (v).rate_remaining, (v).rate_limit\n"
	  . "  FROM (SELECT which, apikeys.verify(token, 'api:read') AS v FROM tok\n"
	  . "         WHERE which = (ARRAY['empty', 'low', 'plain'])[:k]) x;\n");
my $bench = start_pgbench($node, $script, 4, 6);
# a concurrent admin: balance and rule changes that must not give or take
for my $i (1 .. 20)
{
	$node->safe_psql('postgres', qq{
		SELECT apikeys.update_key(client_id, credits => 0) FROM apikeys.keys WHERE name = 'empty';
		SELECT apikeys.update_key(client_id, name => 'low') FROM apikeys.keys WHERE name = 'low'});
}
my ($tx, $out, $err) = finish_pgbench($bench);
unlike($err, qr/aborted|ERROR/, 'no pgbench client failed') or diag($err);
ok($tx > 100, "pgbench verified concurrently ($tx)");

# 1
is($node->safe_psql('postgres', q{SELECT count(*) FROM answers WHERE code = 'VALID'}),
	'20', "the owner's window gave exactly its 20 requests, all to VALID answers");
# 2
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE which = 'empty' AND code = 'VALID')
	       || ',' || (count(*) FILTER (WHERE which = 'low' AND code = 'VALID') <= 5)
	  FROM answers}), '0,true', '"empty" never VALID, "low" at most its 5 credits');
is($node->safe_psql('postgres', q{
	SELECT (SELECT credits_remaining FROM apikeys.key_list WHERE name = 'low')
	       = 5 - (SELECT count(*) FROM answers WHERE which = 'low' AND code = 'VALID')}),
	't', "\"low\"'s balance is 5 minus its VALID answers");
# 3
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM answers
	 WHERE rate_remaining < 0 OR rate_remaining > rate_limit}),
	'0', 'rate_remaining stayed within [0, limit]');
# 4: the owner's window is full, so lift it to see "empty"'s own window
$node->safe_psql('postgres', q{
	SELECT apikeys.set_owner_policy('acme', rate_limit => 0);
	SELECT apikeys.add_credits(client_id, 10) FROM apikeys.keys WHERE name = 'empty'});
is($node->safe_psql('postgres', q{
	SELECT string_agg((apikeys.verify(token, 'api:read')).code, ',')
	  FROM tok, generate_series(1, 4) WHERE which = 'empty'}),
	'VALID,VALID,VALID,RATE_LIMITED', '"empty" kept its whole own window: 3 VALID once topped up');

$node->stop;
done_testing();
