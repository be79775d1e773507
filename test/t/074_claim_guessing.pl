# test/t/074_claim_guessing.pl
#
# A claim code cannot be guessed (issue 18 item 3): at most five codes are
# compared per claim, in the server setups pg_regress cannot give.
#   1. No free background worker slot (max_worker_processes = 0, as when
#      another login role holds every slot with parallel workers).  With
#      apikeys preloaded, five wrong codes still lock the claim and the
#      right code is refused after them: the count lives in shared memory
#      and needs no worker.  (The old claim_key logged "not counted" and
#      compared every code: the right one, tried after ten wrong ones, won.)
#   2. A restart: what the claim sync worker wrote to the claim's row is
#      the floor of the new count, and five wrong codes in all lock it
#      durably (locked_at, audit row).  And 24 sessions sending 480 wrong
#      codes at once (pgbench) get five compared.
#   3. Without preloading and without a free slot the claim is refused
#      (53400) with no code compared: fail closed.  With a slot, five wrong
#      codes lock it.
#   4. A hot standby: claim_key refuses at once with 25006 (the old one
#      waited forever for a worker that never starts during recovery).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;
use Time::HiRes qw(time);

my $node = start_node('guessing', init => { allows_streaming => 1 }, conf => q{
max_worker_processes = 0
max_connections = 40
}, create => q{
CREATE EXTENSION apikeys;
CREATE FUNCTION public.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
});

# handoff($node, $name): a new handoff key's client ID, claim token and code
sub handoff
{
	my ($n, $name) = @_;
	my $cid = sq($n,
		"SELECT client_id FROM apikeys.create_key('guess', '$name', '{docs:read}',
		        contact_email => 'int\@example.com', contact_phone => '+447894123456', handoff => true)");
	my ($claim, $code) = split /\|/, sq($n,
		qq{SELECT (SELECT payload->>'claim_token' FROM apikeys.outbox WHERE client_id = '$cid' AND event = 'handoff_link')
		    || '|' || (SELECT payload->>'code' FROM apikeys.outbox WHERE client_id = '$cid' AND event = 'handoff_code')});
	return ($cid, $claim, $code);
}

# claim($node, $claim, $code): 'ok' or the SQLSTATE, each in its own session
sub claim
{
	my ($n, $claim, $code) = @_;
	return sq($n, "SELECT public.err(\$\$SELECT apikeys.claim_key('$claim', '$code')\$\$)");
}

sub wrong
{
	my ($code, $i) = @_;
	return sprintf('%06d', ($code + $i) % 1000000);
}

#
# 1. no free worker slot, preloaded
#
my ($cid, $claim, $code) = handoff($node, 'no slots');
my $log_offset = -s $node->logfile;
my @answers = map { claim($node, $claim, wrong($code, $_)) } 1 .. 10;
is_deeply(\@answers, [ ('28000') x 10 ], 'ten wrong codes without a free worker slot: each refused');
is(claim($node, $claim, $code), '28000', 'the right code after them is refused: the claim allows no more comparisons');
is(sq($node, "SELECT a.attempts, a.wrong FROM apikeys_internal._claim_attempts() a JOIN apikeys.claims c ON c.id = a.claim_id AND substr(c.code_hash, 1, 8) = a.tag WHERE c.client_id = '$cid'"),
	'5|5', 'five codes were compared, no more');
ok($node->log_contains('no background worker slot is free', $log_offset),
	'no worker could start (the count did not need one)');
is(sq($node, "SELECT status FROM apikeys.key_list WHERE client_id = '$cid'"),
	'pending', 'the key is still pending');

#
# 2. a restart: the row's count is the floor
#
$node->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$node->restart;
my ($cid2, $claim2, $code2) = handoff($node, 'restart');
is(claim($node, $claim2, wrong($code2, 1)), '28000', 'a wrong code');
is(claim($node, $claim2, wrong($code2, 2)), '28000', 'another wrong code');
is(sq($node, "SELECT failures FROM apikeys.claims WHERE client_id = '$cid2'"),
	'2', 'the claim sync worker wrote both to the claim\'s row');
$node->restart;
is(sq($node, 'SELECT count(*) FROM apikeys_internal._claim_attempts()'), '0',
	'a restart empties the attempt table');
@answers = map { claim($node, $claim2, wrong($code2, $_)) } 3 .. 5;
is_deeply(\@answers, [ ('28000') x 3 ], 'three more wrong codes after the restart');
is(claim($node, $claim2, $code2), '28000', 'then the right code is refused: five in all, across the restart');
is(sq($node,
		"SELECT failures, locked_at IS NOT NULL FROM apikeys.claims WHERE client_id = '$cid2'"),
	'5|t', 'the claim is locked in its row');
is(sq($node,
		"SELECT count(*) FROM apikeys.audit_log WHERE client_id = '$cid2' AND event = 'claim_locked'"),
	'1', 'and the lock is audited once');

# 24 sessions guessing at once (the old design compared 153 codes so):
# 480 wrong codes, five compared
my ($cid5, $claim5, $code5) = handoff($node, 'concurrent');
$node->pgbench(
	'--no-vacuum --client=24 --jobs=4 --transactions=20',
	0, [qr{processed: 480/480}], [qr{}],
	'24 sessions send 480 wrong codes at once',
	{
		'064_guess' => "DO \$\$ BEGIN PERFORM apikeys.claim_key('$claim5', "
		  . "lpad((($code5 + 1 + floor(random() * 999998)::int) % 1000000)::text, 6, '0')); "
		  . "EXCEPTION WHEN OTHERS THEN NULL; END \$\$;"
	});
is(sq($node, "SELECT a.attempts, a.wrong FROM apikeys_internal._claim_attempts() a JOIN apikeys.claims c ON c.id = a.claim_id AND substr(c.code_hash, 1, 8) = a.tag WHERE c.client_id = '$cid5'"),
	'5|5', 'five of them were compared, no more');
is(claim($node, $claim5, $code5), '28000', 'the right code after them is refused');
is(sq($node,
		"SELECT failures, locked_at IS NOT NULL FROM apikeys.claims WHERE client_id = '$cid5'"),
	'5|t', 'the claim is locked in its row');

#
# 3. not preloaded: fail closed without a slot
#
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\nmax_worker_processes = 0\n");
$node->restart;
my ($cid3, $claim3, $code3) = handoff($node, 'not preloaded');
is(claim($node, $claim3, $code3), '53400',
	'without preloading and without a free slot even the right code is refused (53400)');
is(sq($node, "SELECT failures FROM apikeys.claims WHERE client_id = '$cid3'"),
	'0', 'and nothing was compared or counted');
$node->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$node->restart;
@answers = map { claim($node, $claim3, wrong($code3, $_)) } 1 .. 5;
is_deeply(\@answers, [ ('28000') x 5 ], 'with a slot: five wrong codes');
is(claim($node, $claim3, $code3), '28000', 'then the right code is refused');
is(sq($node,
		"SELECT failures, locked_at IS NOT NULL FROM apikeys.claims WHERE client_id = '$cid3'"),
	'5|t', 'counted in the row, and locked');

#
# 4. a hot standby refuses at once
#
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'apikeys'\n");
$node->restart;
my ($cid4, $claim4, $code4) = handoff($node, 'standby');
my $standby = start_standby($node, 'guessing_standby');
$node->wait_for_catchup($standby, 'replay');
my $t0 = time;
my $timed_out = 0;
my ($rc, $out, $err) = $standby->psql('postgres', "SELECT apikeys.claim_key('$claim4', '" . wrong($code4, 1) . "')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ], timeout => 30, timed_out => \$timed_out);
my $elapsed = time - $t0;
ok(!$timed_out, 'a wrong code on the standby does not hang');
like($err // '', qr/25006: cannot claim an API key during recovery/, 'a wrong code on the standby: 25006');
ok($elapsed < 10, sprintf('at once (%.1f s)', $elapsed));
($rc, $out, $err) = $standby->psql('postgres', "SELECT apikeys.claim_key('$claim4', '$code4')",
	extra_params => [ '-v', 'VERBOSITY=verbose' ], timeout => 60);
like($err, qr/25006: cannot claim an API key during recovery/, 'the right code on the standby: 25006');
is(sq($node, "SELECT token IS NOT NULL FROM apikeys.claim_key('$claim4', '$code4')"),
	't', 'the primary claims it');

done_testing();
