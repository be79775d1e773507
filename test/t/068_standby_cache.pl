# test/t/068_standby_cache.pl
#
# The shared verification cache on a hot standby (src/verify_standby.c): entries
# filled during recovery are re-checked against the heap tuple they came
# from on every hit, so a change replayed from the primary is seen by the
# very first verification after its commit is replayed, never later.
#
# Every key is first proved cached on the standby (a second verification
# in one session is a hit: cache_stats().session_hits), then changed on the
# primary; after replay the first verification must show the change.  A
# pgbench on the standby verifies all keys continuously meanwhile, so fills
# race with replay.  A promotion happens in the middle.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

$PostgreSQL::Test::Utils::timeout_default = 120;

my $primary = start_node('primary', init => { allows_streaming => 1 }, conf => qq{
apikeys.cache_size = 1000
apikeys.prewarm = off    # the standby starts cold: fills are seen (069 tests the reload)
}, create => q{
CREATE EXTENSION apikeys;
SELECT apikeys.define_scope_set('readers', ARRAY['docs:read']);
CREATE TABLE tok (name text PRIMARY KEY, client_id text, token text);
});

sub issue
{
	my ($name, $scopes) = @_;
	$scopes //= "ARRAY['docs:read']";
	$primary->safe_psql('postgres',
		"INSERT INTO tok SELECT '$name', client_id, token FROM apikeys.create_key('o-$name', '$name', $scopes)");
	return $primary->safe_psql('postgres', "SELECT client_id FROM tok WHERE name = '$name'");
}

my %cid;
$cid{$_} = issue($_) for qw(rev dis rot0 rotg rotx del upd flip vac late);
$cid{set} = issue('set', "ARRAY['\@readers']");

my $standby = start_standby($primary, 'standby');

sub replay { $primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert')); }
replay();
is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# verifications of one session on $node: "code,code,...|hits|misses"
sub session
{
	my ($node, @calls) = @_;
	# one statement per call, so each is its own verification
	my @stmts = map {
		my ($name, $scope, $tok) = @$_;
		my $t = defined $tok ? "'$tok'" : "(SELECT token FROM tok WHERE name = '$name')";
		my $s = defined $scope ? "'$scope'" : 'NULL';
		"SELECT (apikeys.verify($t, $s)).code;"
	} @calls;
	my $out = $node->safe_psql('postgres',
		join("\n", @stmts) . "\nSELECT session_hits || '|' || session_misses FROM apikeys.cache_stats();");
	my @l = split /\n/, $out;
	my $stats = pop @l;
	return join(',', @l) . "|$stats";
}

# a key is cached on the standby: verified twice in a fresh session, the
# second call is a hit (the first may be one too: the loop below fills)
sub cached_on_standby
{
	my ($name) = @_;
	my $r = session($standby, [$name], [$name]);
	return $r =~ /^VALID,VALID\|([12])\|/ ? 1 : $r;
}

is(session($standby, ['rev'], ['rev'], ['rev']), 'VALID,VALID,VALID|2|1',
	'on the standby, the first verification fills the cache and the next ones are hits');
is($standby->safe_psql('postgres', 'SELECT entries > 0 FROM apikeys.cache_stats()'), 't',
	'the standby has cache entries');
is(session($standby, ['set'], ['set']), 'VALID,VALID|0|2',
	'a key with a named scope set is not cached on a standby (a set change touches no key row)');

# verify every key ('late' aside, see the promotion) continuously on the standby while the primary changes them
my $loop = $standby->basedir . '/loop.sql';
PostgreSQL::Test::Utils::append_to_file($loop,
	"SELECT count(*) FROM tok, LATERAL apikeys.verify(tok.token, 'docs:read') v\n"
	  . " WHERE v.valid AND tok.name <> 'late';\n");
my $lerrf = $standby->basedir . '/loop.err';
my $bench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '1', '-T', '600', '-P', '1', '-f', $loop, '-d', $standby->connstr('postgres') ],
	'>', '/dev/null', '2>', $lerrf);

# a change, replayed, must be seen by the first verification after it
sub change_seen
{
	my ($what, $sql, $calls, $expect) = @_;
	$primary->safe_psql('postgres', $sql);
	replay();
	my $r = session($standby, @$calls);
	$r =~ s/\|.*//;
	is($r, $expect, "$what: seen by the first verification on the standby after replay");
}

is(cached_on_standby('rev'), 1, 'revoke: the key is cached on the standby before');
change_seen('revoke', "SELECT apikeys.revoke_key('$cid{rev}')", [['rev']], 'REVOKED');

is(cached_on_standby('dis'), 1, 'disable: the key is cached on the standby before');
change_seen('disable', "SELECT apikeys.disable_key('$cid{dis}')", [['dis']], 'DISABLED');
change_seen('enable', "SELECT apikeys.enable_key('$cid{dis}')", [['dis']], 'VALID');

my $old0 = $primary->safe_psql('postgres', "SELECT token FROM tok WHERE name = 'rot0'");
is(cached_on_standby('rot0'), 1, 'rotation: the key is cached on the standby before');
my $new0 = $primary->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$cid{rot0}')");
replay();
is(session($standby, ['rot0', undef, $old0], ['rot0', undef, $new0]) =~ s/\|.*//r, 'NOT_FOUND,VALID',
	'rotation without grace: the old secret fails and the new one works at once on the standby');

my $oldg = $primary->safe_psql('postgres', "SELECT token FROM tok WHERE name = 'rotg'");
is(cached_on_standby('rotg'), 1, 'rotation with grace: the key is cached on the standby before');
my $newg = $primary->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$cid{rotg}', '1 hour')");
replay();
is(session($standby, ['rotg', undef, $oldg], ['rotg', undef, $newg]) =~ s/\|.*//r, 'VALID,VALID',
	'rotation with grace: both secrets work on the standby');

# the end of a grace is computed at each verification, also on a hit
my $oldx = $primary->safe_psql('postgres', "SELECT token FROM tok WHERE name = 'rotx'");
my $newx = $primary->safe_psql('postgres', "SELECT token FROM apikeys.rotate_key('$cid{rotx}', '2 seconds')");
replay();
sleep(3);
like(session($standby, ['rotx', undef, $newx], ['rotx', undef, $oldx]), qr/^VALID,EXPIRED\|[12]\|/,
	'a grace that ended answers EXPIRED from a cache hit on the standby');

is(cached_on_standby('del'), 1, 'delete: the key is cached on the standby before');
change_seen('delete', "SELECT apikeys.delete_key('$cid{del}')", [['del']], 'NOT_FOUND');

is(cached_on_standby('upd'), 1, 'update: the key is cached on the standby before');
change_seen('update of scopes', "SELECT apikeys.update_key('$cid{upd}', scopes => ARRAY['docs:write'])",
	[['upd', 'docs:read'], ['upd', 'docs:write']], 'INSUFFICIENT_SCOPE,VALID');

change_seen('scope set redefined', "SELECT apikeys.define_scope_set('readers', ARRAY['docs:write'])",
	[['set', 'docs:read'], ['set', 'docs:write']], 'INSUFFICIENT_SCOPE,VALID');

# back and forth, many times, with the loop refilling between changes: HOT
# updates, pruning and line-pointer reuse on the key's page
my $bad = 0;
for my $i (1 .. 15)
{
	$primary->safe_psql('postgres', "SELECT apikeys.disable_key('$cid{flip}')");
	replay();
	my $r = session($standby, ['flip']) =~ s/\|.*//r;
	$bad++, diag("round $i disabled: $r") if $r ne 'DISABLED';
	cached_on_standby('flip');    # refill after the enable below
	$primary->safe_psql('postgres', "SELECT apikeys.enable_key('$cid{flip}')");
	replay();
	$r = session($standby, ['flip'], ['flip']) =~ s/\|.*//r;
	$bad++, diag("round $i enabled: $r") if $r ne 'VALID,VALID';
	$primary->safe_psql('postgres', 'VACUUM apikeys.keys') if $i % 5 == 0;
}
is($bad, 0, '15 disable/enable rounds: every first verification after replay shows the change');

# a rewrite of the table (new relfilenode): entries of the old file are misses
is(cached_on_standby('vac'), 1, 'rewrite: the key is cached on the standby before');
$primary->safe_psql('postgres', 'VACUUM FULL apikeys.keys');
replay();
like(session($standby, ['vac'], ['vac']), qr/^VALID,VALID\|[12]\|/,
	'after VACUUM FULL on the primary keys verify, and hit again, on the standby');
change_seen('revoke after the rewrite', "SELECT apikeys.revoke_key('$cid{vac}')", [['vac']], 'REVOKED');

# an aborted update leaves an xmax: a miss, never a wrong answer
$primary->safe_psql('postgres',
	"BEGIN; SELECT apikeys.disable_key('$cid{upd}'); ROLLBACK;");
replay();
is(session($standby, ['upd', 'docs:write'], ['upd', 'docs:write']) =~ s/\|.*//r, 'VALID,VALID',
	'an aborted disable changes nothing on the standby');

# promotion in the middle: cache a key, revoke it, replay, promote; the
# standby's entries must not be used by the primary protocol ('late' is not
# in the loop, so nothing refills its entry after the revocation replays)
is(cached_on_standby('late'), 1, 'promotion: the key is cached on the standby before');
$primary->safe_psql('postgres', "SELECT apikeys.revoke_key('$cid{late}')");
replay();
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'promotion did not finish';
is(session($standby, ['late']) =~ s/\|.*//r, 'REVOKED', 'after promotion: the revocation replayed before it holds');
like(session($standby, ['flip'], ['flip']), qr/^VALID,VALID\|[12]\|/,
	'after promotion: keys are cache hits under the primary protocol');
$standby->safe_psql('postgres', "SELECT apikeys.revoke_key('$cid{flip}')");
is(session($standby, ['flip']) =~ s/\|.*//r, 'REVOKED', 'after promotion: a revocation on the new primary is seen at once');

$bench->kill_kill;
my $lerr = slurp_file($lerrf);
like($lerr, qr/progress: .* [1-9][0-9.]* tps/, 'the verification loop ran on the standby');
unlike($lerr, qr/ERROR|aborted/, 'and no verification in it raised an error');

$standby->stop;
done_testing();
