# Every change made through the extension sends NOTIFY apikeys_events with a
# JSON payload (event, client_id) and never a secret, so application caches
# can evict at once.  Notifications are delivered only at commit.  Any role
# may LISTEN on any channel, so the payload carries only what is public:
# the event name and the client ID (which lists, errors and logs show
# anyway), never the owner, the key's name, a reason or any other detail
# (those are in audit_log, which only apikeys_admin reads).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node = start_node('events', preload => 0);

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
like($p->{client_id}, qr/^ak_[A-Za-z0-9]{16}$/, 'payload names the client ID');
is(scalar(grep { index($_, $secret) >= 0 } @payloads), 0, 'no payload carries the secret');

# A role with no apikeys privilege at all listens in its own session.
sq($node, 'CREATE ROLE nosy LOGIN');
my $nosy = $node->background_psql('postgres', extra_params => [ '-U', 'nosy' ]);
$nosy->query_safe('LISTEN apikeys_events');
sq($node, q{
CREATE TABLE k2 AS SELECT * FROM apikeys.create_key('nosy-target-owner', 'nosy-target-name', '{docs:read}',
                                                    description => 'nosy-target-description');
SELECT apikeys.update_key((SELECT client_id FROM k2), name => 'nosy-renamed', contact_email => 'nosy-target@example.com');
SELECT apikeys.disable_key((SELECT client_id FROM k2), 'nosy-target-reason');
SELECT apikeys.set_owner_policy('nosy-target-owner', 4);
SELECT apikeys.revoke_all_keys('nosy-target-owner', 'nosy-target-reason');
});
my $heard = $nosy->query_safe('SELECT 1');
$nosy->quit;
my @nosy_payloads = $heard =~ /Asynchronous notification "apikeys_events" with payload "(.*?)" received from server process/g;
is_deeply([ map { decode_json($_)->{event} } @nosy_payloads ],
	[qw(created updated disabled policy_changed revoked revoked_all)],
	'an unprivileged listener is woken for each change');
is_deeply([ sort keys %{ { map { %{ decode_json($_) } } @nosy_payloads } } ],
	[qw(client_id event)], 'payloads hold only the event and the client ID');
is(scalar(grep { /nosy-target|nosy-renamed|events-owner/ } @nosy_payloads), 0,
	'no payload names an owner, a key name, a reason, an email or a description')
  or diag join("\n", @nosy_payloads);
my $k2 = sq($node, 'SELECT client_id FROM k2');
is_deeply([ map { decode_json($_)->{client_id} // 'none' } @nosy_payloads ],
	[ $k2, $k2, $k2, 'none', $k2, 'none' ],
	'per-key events carry the client ID; owner-wide events carry none');

done_testing();
