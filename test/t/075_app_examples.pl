# test/t/075_app_examples.pl
#
# The app-backend examples, run as a user would run them, against a real
# server through a real HTTP client (HTTP::Tiny):
#   examples/node    Express + pg (npm, package-lock.json; test/deps.sh)
#   examples/python  FastAPI + psycopg 3 (Debian packages; test/deps.sh)
# Each serves GET /notes (public; a key shows its owner's notes too) and
# POST /notes (needs notes:create) from examples/*/schema.sql.  The apps
# reach PostgreSQL over a unix socket, where the server knows no client
# address: an IP-restricted key works only because the app passes the HTTP
# client's address as client_ip, and only from that address (the HTTP
# client binds 127.0.0.2 or 127.0.0.1).
# Checked per example: 200 anonymous (public rows) and with a key (RLS sees
# the key's owner: the per-request transaction); 401 + WWW-Authenticate for
# no key, a malformed key and a revoked key; 403 for a missing scope and a
# wrong address; 429 + Retry-After for a rate-limited key; bind parameters
# (a quote-laden title is stored as sent); and no authenticate() outside a
# transaction block (its 25P01 warning never reaches the server log).
use strict;
use warnings;
use File::Compare;
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

my $root = $ENV{APIKEYS_ROOT} or die 'APIKEYS_ROOT is not set';
my $python = '/usr/bin/python3';

# the extension is created by the examples' schema.sql, below
my $node = start_node('apps', conf => "apikeys.max_failures = 1000\n", create => '');

is(compare("$root/examples/node/schema.sql", "$root/examples/python/schema.sql"),
	0, 'both examples ship the same schema.sql (python\'s links to node\'s)');
$node->command_ok(
	[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('postgres'),
		'-f', "$root/examples/node/schema.sql" ],
	'schema.sql runs as its header says');
sq($node, q{
SELECT apikeys.set_owner_policy('acme', max_keys => 50);
SELECT apikeys.set_owner_policy('globex', max_keys => 50);
INSERT INTO public.notes (owner, title, public) VALUES ('acme', 'acme public note', true),
                                                      ('acme', 'acme private note', false),
                                                      ('globex', 'globex private note', false);
});

# key(owner, name, scopes, extra): a new key's token
sub key
{
	my ($owner, $name, $scopes, $extra) = @_;
	$extra = $extra ? ", $extra" : '';
	return sq($node,
		"SELECT token FROM apikeys.create_key('$owner', '$name', ARRAY[$scopes]$extra)");
}

my $json = JSON::PP->new->utf8->canonical;
my $from1 = HTTP::Tiny->new(timeout => 20, local_address => '127.0.0.1');
my $from2 = HTTP::Tiny->new(timeout => 20, local_address => '127.0.0.2');

# start_app(cmd, port): the example, as notes_app over the unix socket
sub start_app
{
	my ($name, $cmd, $port) = @_;
	my $log = $PostgreSQL::Test::Utils::tmp_check . "/app_$name.log";
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGUSER} = 'notes_app';
	local $ENV{PORT} = $port;
	local $ENV{HOST} = '127.0.0.1';
	my $h = IPC::Run::start($cmd, '<', \undef, '>', $log, '2>&1');
	for (1 .. 300)
	{
		my $r = $from1->get("http://127.0.0.1:$port/notes");
		return ($h, $log) if $r->{status} != 599;
		select(undef, undef, undef, 0.1);
	}
	$h->kill_kill;
	BAIL_OUT("$name did not start; its output:\n" . slurp_file($log));
}

sub req
{
	my ($client, $method, $url, $token, $body) = @_;
	my %h;
	$h{'x-api-key'} = $token if defined $token;
	my %opt = (headers => \%h);
	if (defined $body)
	{
		$h{'content-type'} = 'application/json';
		$opt{content} = $json->encode($body);
	}
	return $client->request($method, $url, \%opt);
}

sub titles
{
	my ($r) = @_;
	return join ',', map { $_->{title} } @{ $json->decode($r->{content}) };
}

my %apps = (
	node => [ 'node', "$root/examples/node/app.js" ],
	python => [ $python, "$root/examples/python/app.py" ],);

for my $name (sort keys %apps)
{
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($h, $log) = start_app($name, $apps{$name}, $port);
	my $url = "http://127.0.0.1:$port/notes";

	my $reader = key('acme', "$name reader", q{'notes:read'});
	my $writer = key('acme', "$name writer", q{'notes:read', 'notes:create'});
	my $limited = key('acme', "$name limited", q{'notes:read'}, q{rate_limit => 2, rate_window => '1 hour'});
	my $office = key('acme', "$name office", q{'notes:read'}, q{allowed_cidrs => '{127.0.0.2/32}'});
	my $revoked = key('globex', "$name revoked", q{'notes:read'});
	sq($node,
		"SELECT apikeys.revoke_key(client_id) FROM apikeys.key_list WHERE name = '$name revoked'");

	# public endpoint
	my $r = req($from1, 'GET', $url);
	is($r->{status}, 200, "$name: GET without a key: 200");
	is(titles($r), 'acme public note', "$name: ... public notes only");
	$r = req($from1, 'GET', $url, $reader);
	is($r->{status}, 200, "$name: GET with a key: 200");
	is(titles($r), 'acme public note,acme private note',
		"$name: ... and the key's owner's notes (authenticated in the request's transaction)");
	$r = req($from1, 'GET', $url, 'ak_not_a_real_key');
	is($r->{status}, 401, "$name: GET with a malformed key: 401");
	like($r->{headers}{'www-authenticate'} // '', qr/^ApiKey realm="api"/, "$name: ... with WWW-Authenticate");
	$r = req($from1, 'GET', $url, $revoked);
	is($r->{status}, 401, "$name: GET with a revoked key: 401");
	like($r->{headers}{'www-authenticate'} // '', qr/^ApiKey realm="api"/, "$name: ... with WWW-Authenticate");

	# scoped endpoint
	$r = req($from1, 'POST', $url, undef, { title => 'no key' });
	is($r->{status}, 401, "$name: POST without a key: 401");
	like($r->{headers}{'www-authenticate'} // '', qr/^ApiKey realm="api"/, "$name: ... with WWW-Authenticate");
	$r = req($from1, 'POST', $url, $reader, { title => 'reader' });
	is($r->{status}, 403, "$name: POST with a key lacking notes:create: 403");
	my $title = "$name'); DROP TABLE public.notes; --";
	$r = req($from1, 'POST', $url, $writer, { title => $title });
	is($r->{status}, 201, "$name: POST with notes:create: 201");
	my $row = $r->{status} == 201 ? $json->decode($r->{content}) : {};
	is($row->{owner}, 'acme', "$name: ... the note belongs to the key's owner");
	is(sq($node, "SELECT count(*) FROM public.notes WHERE title = \$\$$title\$\$"),
		'1', "$name: ... stored exactly as sent (bind parameters)");
	sq($node, "DELETE FROM public.notes WHERE title = \$\$$title\$\$");

	# rate limit: the third request within the hour
	my @st = map { req($from1, 'GET', $url, $limited) } 1 .. 3;
	is(join(',', map { $_->{status} } @st), '200,200,429', "$name: a rate-limited key: 200, 200, 429");
	like($st[2]{headers}{'retry-after'} // '', qr/^[1-9][0-9]*$/, "$name: ... with Retry-After in seconds");

	# the client's address reaches apikeys: the key allows 127.0.0.2 only
	$r = req($from2, 'GET', $url, $office);
	is($r->{status}, 200, "$name: an IP-restricted key from its address (127.0.0.2): 200");
	$r = req($from1, 'GET', $url, $office);
	is($r->{status}, 403, "$name: ... from another address (127.0.0.1): 403");

	$h->signal('TERM');
	$h->finish;
	unlike(slurp_file($log), qr/Error|Traceback/, "$name: no errors in its output");
}

unlike(slurp_file($node->logfile), qr/outside a transaction block/,
	'no example authenticates outside a transaction block');

$node->stop;
done_testing();
