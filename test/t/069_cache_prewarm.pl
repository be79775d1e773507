# test/t/069_cache_prewarm.pl
#
# After a restart the shared verification cache is reloaded in the
# background (src/verify_prewarm.c), on the primary and on a hot standby, without
# any call to apikeys.cache_prewarm(), and without delaying the start: the
# server logs that it accepts connections before the reload ends.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 120;
my $nkeys = 3000;

my $primary = start_node('primary', init => { allows_streaming => 1 }, conf => q{
apikeys.cache_size = 10000
apikeys.prewarm = on
}, create => qq{
CREATE EXTENSION apikeys;
CREATE TABLE tok AS
SELECT g, (k).client_id, (k).token
  FROM generate_series(1, $nkeys) g,
       LATERAL apikeys.create_key('owner ' || g, 'key', ARRAY['docs:read']) k;
});
my $standby = start_standby($primary, 'standby', start => 0);

# verifications of three keys in one fresh session: "codes|hits|misses";
# the standby verifies other keys than the primary: a row version that
# replay replaced makes a standby entry a miss (verify_standby.c); the usage
# rollup no longer rewrites key rows, but keeping them apart costs nothing
sub three
{
	my ($node, $base) = @_;
	$base //= 0;
	my $out = sq($node, join("\n",
		(map { "SELECT (apikeys.verify((SELECT token FROM tok WHERE g = $_))).code;" }
		  ($base + 1, $base + 1500, $base + 2990)),
		"SELECT session_hits || '|' || session_misses FROM apikeys.cache_stats();"));
	my @l = split /\n/, $out;
	my $s = pop @l;
	return join(',', @l) . "|$s";
}

sub reload_seen
{
	my ($node, $what, $ready, $offset, $base) = @_;
	ok( $node->poll_query_until('postgres',
			"SELECT entries >= $nkeys FROM apikeys.cache_stats()"),
		"$what: the cache reloads every key after the start, without cache_prewarm()");
	is(three($node, $base), 'VALID,VALID,VALID|3|0', "$what: the first verification of each key is a cache hit");
	my $log = substr(slurp_file($node->logfile), $offset);
	my $r = index($log, $ready);
	my $p = index($log, 'apikeys cache prewarm loaded');
	ok($r >= 0 && $p > $r,
		"$what: the server accepted connections before the reload ended ($r < $p)");
	like($log, qr/apikeys cache prewarm loaded $nkeys keys of database \d+ in \d+ ms/,
		"$what: the reload logs what it loaded");
}

my $offset = -s $primary->logfile;
$primary->restart;
reload_seen($primary, 'primary', 'database system is ready to accept connections', $offset);

$standby->start;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
reload_seen($standby, 'hot standby', 'database system is ready to accept read-only connections', 0, 5);

# apikeys.prewarm = off (the default): after a restart the first verifications are misses
$primary->append_conf('postgresql.conf', 'apikeys.prewarm = off');
$primary->restart;
is(three($primary), 'VALID,VALID,VALID|0|3', 'apikeys.prewarm = off: nothing is reloaded');

$standby->stop;
$primary->stop;
done_testing();
