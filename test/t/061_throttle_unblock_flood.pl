# Two breaks of the failure throttle found by the second outside probe:
#
# #20: unblock_address lifted the shared-memory block at once, so a
# transaction that rolled back (or a READ ONLY one, or a standby, which
# then raised 25006) lifted it anyway, with no audit row.  It must refuse
# read-only transactions and standbys before touching anything, and lift at
# commit only.
#
# #29: junk naming a fresh client ID each time made a new caller each time,
# and a table full of callers with more than one failure (a 15 s flood, from
# any database) stopped every new caller from being counted.  A made-up
# client ID now counts against the address alone, and a full table evicts
# the least useful record, so a new flooding caller is still blocked after
# max_failures.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 300;

# the extension is created below, in each database
my $node = start_node('primary', init => { allows_streaming => 1 }, create => '', conf => q{
apikeys.max_failures = 100
apikeys.max_network_failures = 1000
apikeys.failure_window = 3600
max_prepared_transactions = 2
});

# one imported key per database, so that junk strings are looked up and
# counted (without imports they are MALFORMED and never reach the throttle)
for my $db ('postgres', 'fillerdb')
{
	sq($node, 'CREATE DATABASE fillerdb') if $db eq 'fillerdb';
	sq($node, 'CREATE EXTENSION apikeys', db => $db);
	sq($node, "SELECT apikeys.import_key('filler', 'f', '{a:read}', token => 'FILLER-LEGACY-$db')", db => $db);
}
my $native = sq($node, "SELECT (apikeys.create_key('acme', 'k', '{a:read}')).client_id");

# n junk verifications from addr: how many answered RATE_LIMITED
sub junk_limited
{
	my ($addr, $n, $db) = @_;
	return sq($node, "SELECT count(*) FILTER (WHERE c = 'RATE_LIMITED') FROM "
		  . "(SELECT (apikeys.verify('junk-' || g, NULL, '$addr')).code c FROM generate_series(1, $n) g) s",
		db => $db);
}
sub audit_unblocks
{
	return sq($node, "SELECT count(*) FROM apikeys.audit_log WHERE event = 'address_unblocked'");
}

# --- #20: unblock_address is transactional
is(junk_limited('192.0.2.88', 105), '5', 'a caller is blocked after 100 failures');
my $audits = audit_unblocks();

is(sq($node, "BEGIN; SELECT apikeys.unblock_address('192.0.2.88'); ROLLBACK;"), 't',
	'unblock_address in a transaction answers true (a block will be lifted at commit) ...');
is(junk_limited('192.0.2.88', 1), '1', '... but the rollback keeps the block');
is(audit_unblocks(), $audits, '... and leaves no audit row');

my ($ret, $out, $err) = $node->psql('postgres',
	"\\set VERBOSITY verbose\nBEGIN READ ONLY; SELECT apikeys.unblock_address('192.0.2.88'); COMMIT;");
like($err, qr/25006/, 'a READ ONLY transaction is refused with 25006');
is(junk_limited('192.0.2.88', 1), '1', '... before it lifted anything');

is(sq($node, "BEGIN; SAVEPOINT s; SELECT apikeys.unblock_address('192.0.2.88'); ROLLBACK TO s; COMMIT;"), 't',
	'unblock_address in a subtransaction ...');
is(junk_limited('192.0.2.88', 1), '1', '... rolled back to its savepoint keeps the block');
is(audit_unblocks(), $audits, '... with no audit row');

($ret, $out, $err) = $node->psql('postgres',
	"BEGIN; SELECT apikeys.unblock_address('192.0.2.88'); PREPARE TRANSACTION 'unb';");
like($err, qr/cannot PREPARE a transaction that has called apikeys.unblock_address/,
	'PREPARE TRANSACTION is refused');
is(junk_limited('192.0.2.88', 1), '1', '... and keeps the block');

is(sq($node, "BEGIN; SELECT apikeys.unblock_address('192.0.2.88'); "
	  . "SELECT count(*) FROM apikeys.failing_addresses WHERE address = '192.0.2.88' AND blocked; COMMIT;"),
	"t\n1", 'until the commit the record is still there');
is(audit_unblocks(), $audits + 1, 'the commit writes one audit row ...');
is(junk_limited('192.0.2.88', 50), '0', '... and lifts the block');
is(sq($node, "SELECT apikeys.unblock_address('192.0.2.88')"), 'f',
	'a caller with failures but no block: false ...');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address = '192.0.2.88'")
	  . ' ' . (audit_unblocks() - $audits), '0 2', '... its record cleared, and audited');
is(sq($node, "SELECT apikeys.unblock_address('192.0.2.88')"), 'f', 'nothing left: false');
is(audit_unblocks() - $audits, 2, '... and no audit row');

# a standby refuses before it lifts anything (its throttle is its own)
my $standby = start_standby($node, 'standby');
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', "SELECT count(*) FILTER (WHERE c = 'RATE_LIMITED') FROM "
	  . "(SELECT (apikeys.verify('junk-' || g, NULL, '192.0.2.99')).code c FROM generate_series(1, 101) g) s"),
	'1', 'a caller blocked on the standby');
($ret, $out, $err) = $standby->psql('postgres',
	"\\set VERBOSITY verbose\nSELECT apikeys.unblock_address('192.0.2.99');");
like($err, qr/25006/, 'unblock_address on a standby is refused with 25006');
is($standby->safe_psql('postgres', "SELECT (apikeys.verify('junk-x', NULL, '192.0.2.99')).code"),
	'RATE_LIMITED', '... and the block stays');
$standby->stop;

# --- #29: made-up client IDs are not a new caller each
is(sq($node, "SELECT count(*) FILTER (WHERE c = 'RATE_LIMITED') FROM "
	  . "(SELECT (apikeys.verify_client('ak_' || lpad(g::text, 16, 'Z'), repeat('A', 43), NULL, '192.0.2.152')).code c "
	  . "FROM generate_series(1, 105) g) s"),
	'5', 'a fresh made-up client ID every time: blocked after 100 failures, by address');
is(sq($node, "SELECT (apikeys.verify_client('$native', repeat('A', 43), NULL, '192.0.2.152')).code"),
	'NOT_FOUND', 'an existing client ID from there is its own caller');

# --- #29: a table filled by a flood in another database keeps counting
# 60,000 callers (198.51.x.y) with 4 failures each, then new callers here
is(sq($node, "SELECT count(*) FROM generate_series(0, 239999) i WHERE (apikeys.verify('fill-' || i, NULL, "
	  . "('198.51.' || (i / 4 / 250) || '.' || (i / 4 % 250 + 1))::inet)).code IS NOT NULL", db => 'fillerdb'),
	'240000', 'a flood of 60,000 callers with 4 failures each, in another database');
my ($tracked, $capacity) = split /\|/,
  sq($node, 'SELECT tracked_addresses, address_capacity FROM apikeys.usage_stats()');
ok($tracked > 0.95 * $capacity, "the table is full ($tracked of $capacity)");
is(junk_limited('192.0.2.150', 105), '5', 'a new junk caller is still blocked after 100 failures');
is(sq($node, "SELECT count(*) FILTER (WHERE c = 'RATE_LIMITED') FROM "
	  . "(SELECT (apikeys.verify_client('$native', repeat('A', 43), NULL, '192.0.2.151')).code c "
	  . "FROM generate_series(1, 105) g) s"),
	'5', 'a new caller guessing one key\'s secret is blocked after 100 failures');
is(sq($node, "SELECT count(*) FROM apikeys.failing_addresses WHERE address IN ('192.0.2.150', '192.0.2.151') AND blocked"),
	'2', 'both are listed as blocked');
is(sq($node, "SELECT count(*) FILTER (WHERE c = 'RATE_LIMITED') FROM "
	  . "(SELECT (apikeys.verify_client('ak_' || lpad(g::text, 16, 'Y'), repeat('A', 43), NULL, '192.0.2.152')).code c "
	  . "FROM generate_series(1, 3) g) s"),
	'3', 'the caller blocked before the flood stays blocked');

done_testing();
