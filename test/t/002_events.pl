# Every change made through the extension sends NOTIFY apikeys_events with a
# JSON payload (event, client_id, owner) and never a secret, so application
# caches can evict at once.  Notifications are delivered only at commit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('events');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION apikeys');

# One psql session listens, runs the changes, and prints what it received.
my $sql = q{
LISTEN apikeys_events;
CREATE TEMP TABLE k AS SELECT * FROM apikeys.create_key('events-owner', 'k', '{docs:read}');
SELECT apikeys.update_key((SELECT client_id FROM k), name => 'renamed');
SELECT 1 FROM apikeys.rotate_key((SELECT client_id FROM k));
SELECT apikeys.disable_key((SELECT client_id FROM k));
SELECT apikeys.enable_key((SELECT client_id FROM k));
SELECT apikeys.set_owner_policy('events-owner', 3);
BEGIN; SELECT apikeys.revoke_key((SELECT client_id FROM k)); ROLLBACK;
SELECT apikeys.revoke_key((SELECT client_id FROM k), 'done');
SELECT apikeys.revoke_all_keys('events-owner');
SELECT apikeys.delete_key((SELECT client_id FROM k));
SELECT 'secret=' || client_secret FROM k;
};
my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql, extra_params => [ '-X' ]);
is($ret, 0, 'the session ran') or diag $stderr;

my @payloads = ($stderr . $stdout) =~ /Asynchronous notification "apikeys_events" with payload "(.*?)" received from server process/g;
my ($secret) = $stdout =~ /secret=(\w+)/;
my @events = map { decode_json($_)->{event} } @payloads;
is_deeply(\@events,
	[qw(created updated rotated disabled enabled policy_changed revoked revoked_all deleted)],
	'one notification per committed change, none for the rolled-back revoke');
my $p = decode_json($payloads[0]);
is($p->{owner}, 'events-owner', 'payload names the owner');
like($p->{client_id}, qr/^ak_[A-Za-z0-9]{16}$/, 'payload names the client ID');
is(scalar(grep { index($_, $secret) >= 0 } @payloads), 0, 'no payload carries the secret');

done_testing();
