# test/t/010_secret_leaks.pl
#
# No secret, token or hash escapes through the server log, pg_stat_statements,
# NOTIFY payloads or pg_dump, with the most talkative logging there is
# (log_statement = all, log_min_duration_statement = 0, verbose errors).
#
# Clients send tokens as bind parameters (pgbench -M extended), as the
# README recommends, with log_parameter_max_length = 0.  The last part shows
# the one exception: a client that writes its own token into the SQL text
# puts it in log_statement's "statement:" lines, and only there; apikeys
# itself never logs it.
#
# All of it runs twice: without apikeys in shared_preload_libraries and
# with it (the setup README recommends: shared cache, usage counting and
# its background worker, rate limits), each in a subtest.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $node;

for_each_preload(\&run_config, libs => 'pg_stat_statements');
done_testing();

sub run_config
{
my ($preload, $libs) = @_;
$node = PostgreSQL::Test::Cluster->new($preload ? 'leaks_preloaded' : 'leaks');
$node->init;
$node->append_conf(
	'postgresql.conf', qq{
shared_preload_libraries = '$libs'
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
log_statement = 'all'
log_min_duration_statement = 0
log_min_messages = debug1
log_min_error_statement = debug1
log_error_verbosity = verbose
log_parameter_max_length = 0
log_parameter_max_length_on_error = 0
});
$node->start;
is($node->safe_psql('postgres', "SELECT current_setting('shared_preload_libraries')"), $libs,
	"running with shared_preload_libraries = '$libs'");

$node->safe_psql(
	'postgres', q{
CREATE EXTENSION pg_stat_statements;
CREATE EXTENSION apikeys;
CREATE ROLE admin LOGIN IN ROLE apikeys_admin;
CREATE ROLE app LOGIN IN ROLE apikeys_verifier;
CREATE ROLE deliv LOGIN IN ROLE apikeys_delivery;
});

# Issue, rotate and otherwise manage keys as an admin; collect every secret
# and token ever shown.
my (%secret, %token, @cids, @secrets, @tokens);
for my $i (1 .. 5)
{
	my $out = $node->safe_psql('postgres',
		"SELECT client_id, client_secret, token FROM apikeys.create_key('owner$i', 'key $i', ARRAY['docs:read'])",
		extra_params => [ '-U', 'admin' ]);
	my ($cid, $sec, $tok) = split /\|/, $out;
	$secret{$cid} = $sec;
	$token{$cid} = $tok;
	push @cids, $cid;
	push @secrets, $sec;
	push @tokens, $tok;
}
for my $cid (@cids[ 0 .. 1 ])
{
	my $out = $node->safe_psql('postgres',
		"SELECT client_secret, token FROM apikeys.rotate_key('$cid', '1 hour')",
		extra_params => [ '-U', 'admin' ]);
	my ($sec, $tok) = split /\|/, $out;
	push @secrets, $sec;
	push @tokens, $tok;
	$token{$cid} = $tok;
}
like($tokens[0], qr/^ak_[A-Za-z0-9]{16}_[A-Za-z0-9]{49}$/, 'tokens have the documented shape');
# the search below is only as good as the collection: every secret the
# server issued (one per created or rotated audit row) must be in it
is(scalar(@tokens) . ' ' . scalar(@secrets),
	$node->safe_psql('postgres', "SELECT count(*) || ' ' || count(*) FROM apikeys.audit_log WHERE event IN ('created', 'rotated')"),
	'every secret the server issued was collected');

$node->safe_psql(
	'postgres', qq{
SELECT apikeys.update_key('$cids[2]', description => 'changed');
SELECT apikeys.disable_key('$cids[3]', 'testing');
SELECT apikeys.enable_key('$cids[3]');
SELECT apikeys.revoke_key('$cids[4]', 'testing');
SELECT apikeys.set_owner_policy('owner1', 3);
}, extra_params => [ '-U', 'admin' ]);

# NOTIFY payloads of changes
my ($rc, $notify_out, $notify_err) = $node->psql('postgres',
	"LISTEN apikeys_events; SELECT client_secret, token FROM apikeys.rotate_key('$cids[2]'); SELECT 1;",
	extra_params => [ '-U', 'admin' ]);
my ($rot) = grep { /^[A-Za-z0-9]{43}\|/ } split /\n/, $notify_out;
my ($rsec, $rtok) = split /\|/, $rot;
push @secrets, $rsec;
push @tokens, $rtok;
$token{ $cids[2] } = $rtok;
is(scalar(@tokens),
	$node->safe_psql('postgres', "SELECT count(*) FROM apikeys.audit_log WHERE event IN ('created', 'rotated')"),
	'... also after the rotation under LISTEN');
my @notes = grep { /Asynchronous notification/ } split /\n/, $notify_out . $notify_err;
ok(@notes > 0, 'NOTIFY apikeys_events was received');
# that rotation's secret is in the query result itself, so look only at the notes
my $notes = join("\n", @notes);
ok(!grep({ index($notes, $_) >= 0 } @secrets, @tokens), 'no NOTIFY payload holds a secret or token');

# A handoff key's secret exists only once claim_key returns it: before
# that it is in no result, audit row, outbox row or NOTIFY payload (and
# after, in none of those but claim_key's own result).
my ($hrc, $hout, $herr) = $node->psql('postgres',
	q{LISTEN apikeys_events;
	  SELECT client_id || '|' || coalesce(client_secret, 'NULL') || '|' || coalesce(token, 'NULL')
	    FROM apikeys.create_key('owner6', 'handed off', ARRAY['docs:read'],
	         contact_email => 'int@example.com', contact_phone => '+447894123456', handoff => true);
	  SELECT 1;},
	extra_params => [ '-U', 'admin' ]);
my ($hline) = grep { /^ak_\w+\|/ } split /\n/, $hout;
my ($hcid, $hsec, $htok) = split /\|/, $hline;
is("$hsec|$htok", 'NULL|NULL', 'create_key with handoff returns no secret or token');
my @hnotes = grep { /Asynchronous notification/ } split /\n/, $hout . $herr;
ok(@hnotes >= 3, 'the handoff sent wake-ups');
my ($claim, $code) = split /\|/, $node->safe_psql('postgres',
	qq{SELECT (SELECT payload->>'claim_token' FROM apikeys.outbox WHERE client_id = '$hcid' AND event = 'handoff_link')
	    || '|' || (SELECT payload->>'code' FROM apikeys.outbox WHERE client_id = '$hcid' AND event = 'handoff_code')},
	extra_params => [ '-U', 'deliv' ]);
like($claim, qr/^[A-Za-z0-9]{32}$/, 'the delivery role reads the claim link');
my $pre_claim = $node->safe_psql('postgres',
	q{SELECT string_agg(a::text, E'\n') FROM apikeys.audit_log a}) . "\n"
  . $node->safe_psql('postgres', q{SELECT string_agg(o::text, E'\n') FROM apikeys.outbox o}) . "\n"
  . join("\n", @hnotes);
($hrc, $hout, $herr) = $node->psql('postgres',
	"LISTEN apikeys_events; SELECT 'claimed=' || token FROM apikeys.claim_key('$claim', '$code'); SELECT 1;",
	extra_params => [ '-U', 'app' ]);
my ($htoken) = $hout =~ /claimed=(\w+)/;
like($htoken, qr/^\Q$hcid\E_[A-Za-z0-9]{49}$/, 'claim_key returned the token');
my $hsecret = substr($htoken, length($hcid) + 1, 43);
my @cnotes = grep { /Asynchronous notification/ } split /\n/, $hout . $herr;
ok(@cnotes >= 1, 'the claim sent a wake-up');
my $post_claim = $node->safe_psql('postgres',
	q{SELECT string_agg(a::text, E'\n') FROM apikeys.audit_log a}) . "\n"
  . $node->safe_psql('postgres', q{SELECT string_agg(o::text, E'\n') FROM apikeys.outbox o}) . "\n"
  . join("\n", @cnotes);
is(index($pre_claim, $hsecret), -1, 'before the claim: no audit row, outbox row or NOTIFY holds the secret');
is(index($post_claim, $hsecret), -1, 'after the claim: no audit row, outbox row or NOTIFY holds the secret');
is(index($post_claim, $claim), -1, 'after the claim the outbox no longer holds the claim token');
push @secrets, $hsecret;
push @tokens, $htoken;
$token{$hcid} = $htoken;

# The application verifies with bind parameters, good and bad credentials.
my $script = $node->basedir . '/verify.sql';
open my $fh, '>', $script or die;
print $fh <<'EOS';
SELECT (apikeys.verify(:tok)).code;
SELECT (apikeys.verify(:tok, :scope)).code;
SELECT (apikeys.verify(:badtok)).code;
SELECT (apikeys.verify_client(:cid, :sec)).code;
SELECT (apikeys.verify_client(:cid, :badsec)).code;
BEGIN;
SELECT (apikeys.authenticate(:tok)).code;
SELECT apikeys.current_client_id();
COMMIT;
BEGIN;
SELECT set_config('request.headers', :hdr, true), apikeys.pre_request();
SELECT apikeys.current_client_id();
COMMIT;
EOS
close $fh;
my $fail_script = $node->basedir . '/fail.sql';
open $fh, '>', $fail_script or die;
print $fh "SELECT (apikeys.authenticate(:tok)).code;\n";
close $fh;

sub pgbench_params
{
	my ($user, $file, %vars) = @_;
	my @cmd = (
		'pgbench', '-n', '-M', 'extended', '-t', '1',
		'-h', $node->host, '-p', $node->port, '-U', $user, '-f', $file);
	push @cmd, '-D', "$_=$vars{$_}" for sort keys %vars;
	push @cmd, 'postgres';
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(\@cmd, '>', \$stdout, '2>', \$stderr);
	return ($ok, $stdout . $stderr);
}

for my $cid (@cids[ 0 .. 3 ])
{
	my $tok = $token{$cid};
	(my $badtok = $tok) =~ s/.$/($& eq 'A') ? 'B' : 'A'/e;
	my ($ok, $out) = pgbench_params(
		'app', $script,
		tok => $tok,
		scope => 'docs:read',
		badtok => $badtok,
		cid => $cid,
		sec => substr($tok, length($cid) + 1, 43),
		badsec => 'A' x 43,
		hdr => qq({"x-api-key": "$tok"}));
	ok($ok, "verification round for $cid") or diag($out);
}
# a token rotated away without grace and a revoked key's: authenticate
# fails (a logged ERROR)
# for that reason and no other
for my $dead ([ $tokens[2], qr/ERROR:  invalid API key/, 'rotated away' ],
	[ $tokens[4], qr/ERROR:  API key "\Q$cids[4]\E" has been revoked/, 'revoked' ])
{
	my ($ok, $out) = pgbench_params('app', $fail_script, tok => $dead->[0]);
	ok(!$ok, "authenticate with a $dead->[2] token fails");
	like($out, $dead->[1], "... with the error for a $dead->[2] key") or diag($out);
}
# the verification rounds really authenticated: with a good token the
# same script succeeds
{
	my ($ok, $out) = pgbench_params('app', $fail_script, tok => $token{ $cids[0] });
	ok($ok, 'authenticate with a live token succeeds') or diag($out);
}
# report_leaked, by anyone
{
	open $fh, '>', "$fail_script.leak" or die;
	print $fh "SELECT apikeys.report_leaked(:tok);\n";
	close $fh;
	my ($ok, $out) = pgbench_params('app', "$fail_script.leak", tok => $tokens[6]);
	ok($ok, 'report_leaked with a parameter') or diag($out);
}

# preloaded, the verifications above went through the shared cache and
# were counted (so the leak checks below cover that path and its flush)
if ($preload)
{
	is($node->safe_psql('postgres', 'SELECT shared AND entries > 0 FROM apikeys.cache_stats()'), 't',
		'the shared cache holds the verified keys');
	$node->safe_psql('postgres', 'SELECT apikeys.flush_usage()');
	ok($node->safe_psql('postgres', 'SELECT sum(count) FROM apikeys.key_usage') >= 20,
		'the verifications were counted and flushed');
}

# hashes, as the superuser sees them
my @hashes = split /\n/,
  $node->safe_psql('postgres',
	"SELECT encode(secret_hash, 'hex') FROM apikeys.keys UNION ALL SELECT encode(prev_secret_hash, 'hex') FROM apikeys.keys WHERE prev_secret_hash IS NOT NULL"
  );
ok(@hashes >= 5, 'hashes fetched for the search');

# pg_stat_statements
my $pgss = $node->safe_psql('postgres', 'SELECT query FROM pg_stat_statements');
like($pgss, qr/apikeys\.verify/, 'pg_stat_statements saw the verifications');
like($pgss, qr/create_key/, 'pg_stat_statements saw the issuance');
for my $what ([ secret => \@secrets ], [ token => \@tokens ], [ hash => \@hashes ])
{
	my @found = grep { index($pgss, $_) >= 0 } @{ $what->[1] };
	is(scalar(@found), 0, "no $what->[0] in pg_stat_statements");
}

# the server log
my $log = slurp_file($node->logfile);
like($log, qr/apikeys\.verify/, 'the log records the statements');
for my $what ([ secret => \@secrets ], [ token => \@tokens ], [ hash => \@hashes ])
{
	my @found = grep { index($log, $_) >= 0 } @{ $what->[1] };
	is(scalar(@found), 0, "no $what->[0] in the server log");
}

# pg_dump: hashes are user data and are dumped; secrets and tokens never
my $dump = $node->basedir . '/dump.sql';
command_ok([ 'pg_dump', '-h', $node->host, '-p', $node->port, '-f', $dump, 'postgres' ],
	'pg_dump');
my $dumped = slurp_file($dump);
like($dumped, qr/COPY apikeys\.keys/, 'the dump holds the keys');
for my $what ([ secret => \@secrets ], [ token => \@tokens ], [ 'claim token' => [$claim] ])
{
	my @found = grep { index($dumped, $_) >= 0 } @{ $what->[1] };
	is(scalar(@found), 0, "no $what->[0] in pg_dump output");
}
# ... and restores into a database where the keys still verify
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', $node->host, '-p', $node->port, '-d', 'restored', '-f', $dump ],
	'the dump restores');
# (literal tokens from here on: the log checks are done)
is($node->safe_psql('restored', "SELECT (apikeys.verify('$token{$cids[0]}')).code"),
	'VALID', 'a key verifies after restore');
is($node->safe_psql('restored', "SELECT (apikeys.verify('$token{$cids[4]}')).code"),
	'REVOKED', 'a revoked key stays revoked after restore');
is( $node->safe_psql('restored', 'SELECT count(*) FROM apikeys.audit_log'),
	$node->safe_psql('postgres', 'SELECT count(*) FROM apikeys.audit_log'),
	'the audit trail is restored whole');

# The documented exception: a client that writes its token into the SQL
# text.  It reaches the log in log_statement's "statement:" lines and only
# there, never in a line apikeys wrote (an error, detail or notice).
my $before = -s $node->logfile;
my $literal = $token{ $cids[0] };
$node->psql('postgres', "SELECT apikeys.verify('$literal'); SELECT apikeys.authenticate('${literal}x');",
	extra_params => [ '-U', 'app' ]);
my $tail = substr(slurp_file($node->logfile), $before);
my @lines = grep { index($_, $literal) >= 0 } split /\n/, $tail;
ok(@lines > 0, 'a token the client writes into its SQL reaches the log');
is(scalar(grep { !/(statement: |STATEMENT:  )/ } @lines), 0,
	'... only as the client\'s own statement') or diag(join("\n", @lines));

$node->stop;
}
