# test/t/ApikeysTest.pm: what the TAP files of test/t share, written once.
#
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use ApikeysTest;
#
#   my $node = start_node('name', conf => "apikeys.cache_size = 64\n");
#   my $standby = start_standby($node, 'standby');
#   for_each_preload(sub { my ($preload, $libs) = @_; ... });
#   my ($client_id, $token) = issue_key($node, 'acme', 'key 1');
#   is(verify_code($node, $token, 'docs:read'), 'VALID', '...');
#   sq($node, 'SELECT ...');
package ApikeysTest;

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use IPC::Run;

our @EXPORT = qw(start_node start_standby tcp_connstr for_each_preload sq issue_key verify_code
  start_pgbench finish_pgbench);

# start_node(NAME, preload => 1, conf => TEXT, init => {...}, tcp => 0,
#            create => 'CREATE EXTENSION apikeys'): a new cluster, initialised
# with init's options (say allows_streaming => 1), apikeys in
# shared_preload_libraries unless preload => 0 (preload => 'apikeys, other'
# names the list), conf appended to postgresql.conf, listening on
# 127.0.0.1 with trust authentication from there when tcp => 1 (a client
# whose address the server knows: tcp_connstr), started, and create (SQL,
# '' for nothing) run in database postgres.
sub start_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opt{init} // {} });
	my $preload = $opt{preload} // 1;
	my $conf = !$preload ? ''
	  : $preload eq '1' ? "shared_preload_libraries = 'apikeys'\n"
	  : "shared_preload_libraries = '$preload'\n";
	$conf .= "listen_addresses = '127.0.0.1'\n" if $opt{tcp};
	$conf .= $opt{conf} // '';
	$node->append_conf('postgresql.conf', $conf) if $conf ne '';
	if ($opt{tcp})
	{
		# first, so that no line of initdb's decides for 127.0.0.1
		my $hba = $node->data_dir . '/pg_hba.conf';
		my $text = slurp_file($hba);
		open my $fh, '>', $hba or die "could not write $hba: $!";
		print $fh "host all all 127.0.0.1/32 trust\n", $text;
		close $fh;
	}
	$node->start;
	my $create = $opt{create} // 'CREATE EXTENSION apikeys';
	$node->safe_psql('postgres', $create) if $create ne '';
	return $node;
}

# start_pgbench(NODE, SCRIPT, CLIENTS, SECONDS): pgbench running SCRIPT
# against database postgres in the background (-n, -j 2), for
# finish_pgbench.
sub start_pgbench
{
	my ($node, $script, $clients, $seconds) = @_;
	my $run = { out => '', err => '' };
	$run->{h} = IPC::Run::start(
		[ 'pgbench', '-n', '-c', $clients, '-j', '2', '-T', $seconds, '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$run->{out}, '2>', \$run->{err});
	return $run;
}

# finish_pgbench(RUN): waits for start_pgbench's run; returns its
# transactions (undef if it printed none), its stdout and its stderr.
sub finish_pgbench
{
	my ($run) = @_;
	IPC::Run::finish($run->{h});
	my ($tx) = $run->{out} =~ /number of transactions actually processed: (\d+)/;
	return ($tx, $run->{out}, $run->{err});
}

# tcp_connstr(NODE, [USER]): a libpq connection string to database postgres
# over TCP from 127.0.0.1 (a node started with tcp => 1), as USER if given;
# for safe_psql's connstr.
sub tcp_connstr
{
	my ($node, $user) = @_;
	my $c = 'host=127.0.0.1 port=' . $node->port . ' dbname=postgres';
	$c .= " user=$user" if defined $user;
	return $c;
}

# start_standby(PRIMARY, NAME, start => 1): a streaming hot standby of
# PRIMARY (initialised with allows_streaming), from a new base backup
# named after it, started unless start => 0.
sub start_standby
{
	my ($primary, $name, %opt) = @_;
	$primary->backup("${name}_backup");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "${name}_backup", has_streaming => 1);
	$standby->start if $opt{start} // 1;
	return $standby;
}

# for_each_preload(BODY, libs => 'other,libs'): runs BODY($preload, $libs)
# in a subtest twice, without and then with apikeys in
# shared_preload_libraries (after any other libraries named), so that a
# file checks both of README's set-ups.
sub for_each_preload
{
	my ($body, %opt) = @_;
	for my $preload (0, 1)
	{
		my $libs = join(',', grep { defined && $_ ne '' } $opt{libs}, $preload ? 'apikeys' : undef);
		subtest "shared_preload_libraries = '$libs'" => sub { $body->($preload, $libs) };
	}
	return;
}

# sq(NODE, SQL, db => NAME, PARAMS...): safe_psql in database NAME
# (default postgres); the other PARAMS go to safe_psql.
sub sq
{
	my ($node, $sql, %params) = @_;
	my $db = delete $params{db} // 'postgres';
	return $node->safe_psql($db, $sql, %params);
}

# issue_key(NODE, OWNER, NAME, [SCOPES]): (client_id, token) of a new key
# with SCOPES (an SQL array expression, default ARRAY['docs:read']).
sub issue_key
{
	my ($node, $owner, $name, $scopes) = @_;
	$scopes //= "ARRAY['docs:read']";
	return split /\|/,
	  $node->safe_psql('postgres',
		"SELECT client_id, token FROM apikeys.create_key('$owner', '$name', $scopes)");
}

# verify_code(NODE, TOKEN, [SCOPE], PARAMS...): the code apikeys.verify
# answers for TOKEN (and SCOPE, if defined); PARAMS go to safe_psql (say
# extra_params => [ '-U', 'app' ]).
sub verify_code
{
	my ($node, $token, $scope, @params) = @_;
	my $s = defined $scope ? "'$scope'" : 'NULL';
	return $node->safe_psql('postgres', "SELECT (apikeys.verify('$token', $s)).code", @params);
}

1;
