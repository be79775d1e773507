# test/t/080_credits.pl
#
# Credits under load, through a crash and on a standby (src/verify_credits.c):
#   1. pgbench, 8 clients, a key with 500 credits and 1,200 attempts:
#      exactly 500 VALID, with and without preloading;
#   2. a refill (50 every 2 s) under 8 clients for about 5 s: exactly 50
#      VALID per period that began, with and without preloading;
#   3. preloaded: an immediate stop right after a run of spends gives back
#      at most the spends of the last flush intervals (measured, printed);
#   3b. preloaded: a fast restart before any flush gives back nothing (the
#      postmaster saves the unwritten balances), the saved balances are
#      written after the start, and a saved file outdated by a run without
#      preloading is not loaded;
#   4. a hot standby answers USAGE_EXCEEDED for a key with credits and
#      VALID for a key without; those refusals use up no owner window;
#   5. a promoted standby starts from the balances last flushed (and
#      replicated): the spends after that flush are given back.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);

# pgbench(NODE, SCRIPT TEXT, ARGS...): runs pgbench, returns (stdout, stderr)
sub pgbench
{
	my ($node, $text, @args) = @_;
	my $script = $node->basedir . '/bench' . int(rand(1e9)) . '.sql';
	PostgreSQL::Test::Utils::append_to_file($script, $text);
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'pgbench', '-n', @args, '-f', $script,
		'-h', $node->host, '-p', $node->port, 'postgres' ], '>', \$out, '2>', \$err);
	return ($out, $err);
}

for_each_preload(sub {
	my ($preload, $libs) = @_;
	my $node = PostgreSQL::Test::Cluster->new("credits_$preload");
	$node->init(allows_streaming => $preload ? 1 : 0);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$libs'
apikeys.flush_interval = 1
max_connections = 40
log_statement = none
});
	$node->start;
	sq($node, q{
		CREATE EXTENSION apikeys;
		SELECT apikeys.set_owner_policy('load', max_keys => 100);
		CREATE TABLE tok AS
		SELECT 'n' AS k, client_id, token FROM apikeys.create_key('load', 'n', '{}', credits => 500);
		CREATE TABLE answers (k text, code text);
	});

	# 1: exactly N
	my ($out, $err) = pgbench($node,
		"INSERT INTO answers SELECT 'n', (apikeys.verify(token)).code FROM tok WHERE k = 'n';\n",
		'-c', '8', '-j', '2', '-t', '150');
	unlike($err, qr/aborted|ERROR/, 'no pgbench client failed') or diag($err);
	is(sq($node, q{SELECT string_agg(code || '=' || n, ',' ORDER BY code)
		FROM (SELECT code, count(*) AS n FROM answers WHERE k = 'n' GROUP BY code) c}),
		'USAGE_EXCEEDED=700,VALID=500', '500 credits, 8 clients, 1,200 attempts: exactly 500 VALID');
	sq($node, 'SELECT apikeys_internal._credits_flush()');
	is(sq($node, q{SELECT balance FROM apikeys.credit_balances b JOIN tok USING (client_id) WHERE tok.k = 'n'}),
		'0', 'credit_balances holds the balance: 0');

	# 2: a refill applied exactly once per period
	sq($node, q{INSERT INTO tok SELECT 'r', client_id, token
		FROM apikeys.create_key('load', 'r', '{}', credits => 0, refill_amount => 50, refill_every => '2 seconds')});
	my $t0 = time;
	($out, $err) = pgbench($node,
		"INSERT INTO answers SELECT 'r', (apikeys.verify(token)).code FROM tok WHERE k = 'r';\n",
		'-c', '8', '-j', '2', '-T', '5');
	unlike($err, qr/aborted|ERROR/, 'no pgbench client failed (refill)') or diag($err);
	sq($node, 'SELECT apikeys_internal._credits_flush()');
	my ($valid, $periods) = split /\|/, sq($node, q{
		SELECT (SELECT count(*) FROM answers WHERE k = 'r' AND code = 'VALID'),
		       (SELECT floor(extract(epoch FROM b.refilled_at - k.credits_refilled_at) / 2)::int
		          FROM apikeys.keys k JOIN apikeys.credit_balances b USING (client_id)
		          JOIN tok USING (client_id) WHERE tok.k = 'r')});
	ok($periods >= 1, "refills happened during the run ($periods)");
	is($valid, 50 * $periods, "exactly 50 VALID per refill ($valid for $periods refills)");

	if (!$preload)
	{
		$node->stop;
		return;
	}

	# 3: what an immediate stop gives back
	sq($node, q{INSERT INTO tok SELECT 'c', client_id, token
		FROM apikeys.create_key('load', 'c', '{}', credits => 1000000)});
	my $start = time;
	($out, $err) = pgbench($node,
		"INSERT INTO answers SELECT 'c', (apikeys.verify(token)).code FROM tok WHERE k = 'c';\n",
		'-c', '4', '-j', '2', '-T', '3');
	my $secs = time - $start;
	$node->stop('immediate');
	$node->start;
	my ($spent, $balance) = split /\|/, sq($node, q{
		SELECT (SELECT count(*) FROM answers WHERE k = 'c' AND code = 'VALID'),
		       (SELECT apikeys_internal._credits_balance(client_id) FROM tok WHERE k = 'c')});
	my $lost = $balance - (1000000 - $spent);
	my $rate = $spent / $secs;
	note(sprintf('crash: %d spends in %.1f s (%.0f/s), %d given back by the immediate stop '
		  . '(%.2f s of spends; apikeys.flush_interval = 1 s)', $spent, $secs, $rate, $lost, $lost / $rate));
	ok($lost >= 0, "the restart never takes more than was spent ($lost given back)");
	ok($lost <= $rate * 2, sprintf("at most the spends of about one flush interval are given back (%d <= 2 s at %.0f/s)", $lost, $rate));

	# 3b: a clean (fast) restart gives back nothing.  No flush may run
	# meanwhile: the interval is raised, so every spend is in shared memory
	# only when the server stops.
	sq($node, q{ALTER SYSTEM SET apikeys.flush_interval = 3600; SELECT pg_reload_conf();
		SELECT apikeys_internal._credits_flush();
		INSERT INTO tok SELECT 's', client_id, token
		FROM apikeys.create_key('load', 's', '{}', credits => 1000);
		INSERT INTO tok SELECT 't', client_id, token
		FROM apikeys.create_key('load', 't', '{}', credits => 1000);});
	# every spend of 's' unflushed; 't' flushed at 990, then 5 more unflushed
	sq($node, q{SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 10) WHERE k = 't';
		SELECT apikeys_internal._credits_flush();
		SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 5) WHERE k = 't';
		SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 37) WHERE k = 's';});
	my $balances = q{SELECT string_agg(k || '=' || apikeys_internal._credits_balance(client_id), ',' ORDER BY k)
		FROM tok WHERE k IN ('s', 't')};
	is(sq($node, $balances), 's=963,t=985', 'before the restart: 37 and 15 spent');
	$node->stop('fast');
	$node->start;
	is(sq($node, $balances), 's=963,t=985', 'a fast restart before any flush gives back no spend');
	# the launcher's first visit writes the loaded balances: then even an
	# immediate stop keeps them
	ok($node->poll_query_until('postgres', q{SELECT string_agg(k || '=' || balance, ',' ORDER BY k)
		FROM apikeys.credit_balances JOIN tok USING (client_id) WHERE k IN ('s', 't')}, 's=963,t=985'),
		'the balances saved at shutdown are written to credit_balances after the start');
	$node->stop('immediate');
	$node->start;
	is(sq($node, $balances), 's=963,t=985', 'and kept by an immediate stop after that');
	# a saved file is used only by the very next start: a run in between
	# without preloading (which spends from credit_balances) outdates it;
	# what that file held (3 spends) is then given back, never taken twice
	sq($node, q{SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 3) WHERE k = 's'});
	$node->stop('fast');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
	$node->start;
	sq($node, q{SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 4) WHERE k = 's'});
	is(sq($node, $balances), 's=959,t=985', 'not preloaded: spends from the table (963), not the saved 960');
	$node->stop('fast');
	$node->append_conf('postgresql.conf', "shared_preload_libraries = '$libs'\n");
	$node->start;
	is(sq($node, $balances), 's=959,t=985', 'the next preloaded start does not load the outdated file');

	# 4: a standby refuses keys with credits
	$node->backup('bk');
	my $standby = PostgreSQL::Test::Cluster->new('credits_standby');
	$standby->init_from_backup($node, 'bk', has_streaming => 1);
	$standby->start;
	sq($node, q{INSERT INTO tok SELECT 'f', client_id, token FROM apikeys.create_key('load', 'f', '{}')});
	$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
	is($standby->safe_psql('postgres', q{SELECT string_agg(k || '=' || (apikeys.verify(token)).code, ',' ORDER BY k)
		FROM tok WHERE k IN ('c', 'f')}),
		'c=USAGE_EXCEEDED,f=VALID', 'on a standby, a key with credits is refused, a key without is not');

	# 4b: those refusals use up no window (verify.c, JudgeLimits): an owner
	# limited to 3 an hour, its metered key refused 5 times on the standby,
	# then its key without credits still has the owner's 3 requests there
	# (before: RATE_LIMITED at once, retry_after the whole hour)
	sq($node, q{SELECT apikeys.set_owner_policy('stb', rate_limit => 3, rate_window => '1 hour');
		INSERT INTO tok SELECT 'sc', client_id, token FROM apikeys.create_key('stb', 'sc', '{}', credits => 50);
		INSERT INTO tok SELECT 'sf', client_id, token FROM apikeys.create_key('stb', 'sf', '{}')});
	$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
	is($standby->safe_psql('postgres', q{SELECT string_agg(v.code, ',' ORDER BY i)
		FROM tok, generate_series(1, 5) i, LATERAL (SELECT (apikeys.verify(tok.token || left(i::text, 0))).code) v
		WHERE k = 'sc'}),
		join(',', ('USAGE_EXCEEDED') x 5), 'on a standby, the metered key of a rate-limited owner is refused for credits');
	is($standby->safe_psql('postgres', q{SELECT string_agg(v.code, ',' ORDER BY i)
		FROM tok, generate_series(1, 4) i, LATERAL (SELECT (apikeys.verify(tok.token || left(i::text, 0))).code) v
		WHERE k = 'sf'}),
		'VALID,VALID,VALID,RATE_LIMITED', 'and the owner\'s window is untouched: its other key has its 3 requests');

	# 5: a promoted standby starts from the last replicated flush: 10 spends
	# flushed, 5 not (the interval is still an hour) and given back
	sq($node, q{INSERT INTO tok SELECT 'p', client_id, token
		FROM apikeys.create_key('load', 'p', '{}', credits => 100);
		SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 10) WHERE k = 'p';
		SELECT apikeys_internal._credits_flush();
		SELECT count(apikeys.verify(token)) FROM tok, generate_series(1, 5) WHERE k = 'p';});
	$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
	$node->stop('immediate');
	$standby->promote;
	is(sq($standby, q{SELECT apikeys_internal._credits_balance(client_id) FROM tok WHERE k = 'p'}),
		'90', 'promoted: the balance last flushed on the old primary (90), the 5 spends after it given back');
	is(sq($standby, q{SELECT v.code || '=' || v.credits_remaining FROM tok, apikeys.verify(tok.token) v WHERE k = 'p'}),
		'VALID=89', 'the promoted standby spends from there');
	$standby->stop;
	$node->stop;
});

done_testing();
