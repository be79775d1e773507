# The check hooks of the apikeys.* string settings (src/guc.c) hand
# PostgreSQL memory it frees later: a replaced value and the parsed "extra".
# Since PostgreSQL 16 that memory belongs to the GUC memory context
# (guc_malloc/guc_free), before it to malloc/free (src/compat.h); the wrong
# one aborts the backend (SET apikeys.pepper was signal 6 on 16+) or fails
# with "pfree called with invalid pointer" (RESET apikeys.trusted_proxies).
# So: every string setting, set in postgresql.conf at start, then SET,
# SET LOCAL, rolled back, RESET, set to an invalid value, set by a function's
# SET clause, and changed and removed by reloads, on a server with apikeys
# preloaded and on one that loads it in a session; the server never
# restarts and every backend answers to the end.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use ApikeysTest;

# two valid values and one invalid value of every string setting: a string
# setting without a line here fails the test (add it)
my %values = (
	'apikeys.token_prefix'    => [ 'ak',    'zz',   'Not-A-Prefix' ],
	'apikeys.allowed_prefixes' => [ 'acme_live, acme_test', 'zz', 'acme_live, Not-A-Prefix' ],
	'apikeys.pepper'          => [ 'pep-1', 'pep-2', '********' ],
	'apikeys.trusted_proxies' => [ '10.0.0.0/8, 192.168.1.1', '::1', 'no-such-address' ],
);
my %in_file = (
	'apikeys.token_prefix'    => 'tp',
	'apikeys.allowed_prefixes' => 'tp_live, tp_test',
	'apikeys.pepper'          => 'pep-file',
	'apikeys.trusted_proxies' => '127.0.0.1',
);
my %default = (
	'apikeys.token_prefix'    => 'ak',
	'apikeys.allowed_prefixes' => '',
	'apikeys.pepper'          => '',
	'apikeys.trusted_proxies' => '',
);
# what SQL shows of a value (the pepper is always shown as the mask)
sub shown
{
	my ($name, $v) = @_;
	return $v unless $name eq 'apikeys.pepper';
	return $v eq '' ? '' : '********';
}

for my $preload (1, 0)
{
	my $mode = $preload ? 'preloaded' : 'loaded in the session';
	# not for_each_preload: each mode has assertions of its own, not a subtest
	my $node = start_node($preload ? 'guc_pre' : 'guc_load', preload => $preload, create => '',
		conf => join('', map { "$_ = '$in_file{$_}'\n" } sort keys %in_file));
	my $load = $preload ? '' : "LOAD 'apikeys';\n";

	# every string setting the library defines has test values
	my @names = split /\n/, sq($node, qq{${load}
		SELECT name FROM pg_settings WHERE name LIKE 'apikeys.%' AND vartype = 'string'
		UNION SELECT 'apikeys.pepper' ORDER BY 1});
	for my $name (@names)
	{
		ok($values{$name}, "$mode: $name has test values in this file") or next;
	}
	ok(scalar(@names) >= 3, "$mode: the string settings are listed (" . join(', ', @names) . ')');

	for my $name (@names)
	{
		my ($v1, $v2, $bad) = @{ $values{$name} || next };
		my $file = shown($name, $in_file{$name});
		my ($s1, $s2) = (shown($name, $v1), shown($name, $v2));
		my $out = sq($node, qq{${load}
			SELECT current_setting('$name');
			SET $name = '$v1';
			SET $name = '$v2';
			SELECT current_setting('$name');
			RESET $name;
			SELECT current_setting('$name');
			BEGIN; SET LOCAL $name = '$v1'; SELECT current_setting('$name'); ROLLBACK;
			BEGIN; SET $name = '$v2'; ROLLBACK;
			SET $name = '$v1';
			BEGIN; SAVEPOINT s; SET $name = '$v2'; ROLLBACK TO s; COMMIT;
			SELECT current_setting('$name');
			RESET ALL;
			SET $name = '$v2';
			SET $name TO DEFAULT;
			SELECT current_setting('$name');
			DISCARD ALL;
			SELECT 'alive';});
		is($out, join("\n", $file, $s2, $file, $s1, $s1, $file, 'alive'),
			"$mode: $name survives SET, SET LOCAL, rollback, savepoints, RESET");

		my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{${load}
			SET $name = '$v1';
			SET $name = '$bad';});
		isnt($ret, 0, "$mode: $name refuses an invalid value");
		like($stderr, qr/invalid value for parameter "\Q$name\E"/, '... with the GUC error');
		is(sq($node, qq{${load}
			SET $name = '$v1';
			DO \$\$BEGIN PERFORM set_config('$name', '$bad', false);
			  EXCEPTION WHEN OTHERS THEN NULL; END\$\$;
			SELECT current_setting('$name');}), $s1, "$mode: $name keeps its value after a refused one");
	}

	# a function's SET clause (not for the pepper, which cannot be stored there)
	sq($node, qq{${load}
		CREATE FUNCTION tp() RETURNS text LANGUAGE sql SET apikeys.token_prefix = 'zz'
		  SET apikeys.trusted_proxies = '::1' AS \$\$SELECT current_setting('apikeys.token_prefix')\$\$;});
	is(sq($node, qq{${load}SELECT tp(); SELECT tp(); SELECT current_setting('apikeys.token_prefix');}),
		"zz\nzz\ntp", "$mode: a function's SET clause is set and restored");

	# a session that lives through the reloads
	my $bg = $node->background_psql('postgres');
	$bg->query("${load}SET apikeys.token_prefix = 'zz'");	# not query_safe: the pepper warning (not preloaded) is on stderr

	# reload: every value changed, then every line removed
	for my $round ('changed', 'removed')
	{
		my $conf = $node->data_dir . '/postgresql.conf';
		my $text = PostgreSQL::Test::Utils::slurp_file($conf);
		$text =~ s/^apikeys\..*\n//mg;
		$text .= join('', map { "$_ = '$values{$_}[1]'\n" } sort keys %in_file) if $round eq 'changed';
		open(my $fh, '>', $conf) or die $!;
		print $fh $text;
		close $fh;
		$node->reload;
		for my $name (sort keys %in_file)
		{
			my $want = shown($name, $round eq 'changed' ? $values{$name}[1] : $default{$name});
			my $seen = '';
			for (1 .. 300)
			{
				$seen = sq($node, "${load}SELECT current_setting('$name')");
				last if $seen eq $want;
				sleep(0.1);
			}
			is($seen, $want, "$mode: reload $round $name");
		}
		is($bg->query("SELECT current_setting('apikeys.token_prefix')"), 'zz',
			"$mode: the open session keeps its own SET over the $round file");
		$bg->query("RESET apikeys.pepper; RESET apikeys.trusted_proxies; RESET apikeys.token_prefix;
			SET apikeys.token_prefix = 'zz'");
	}
	$bg->quit;

	# the postmaster never restarted a crashed backend, and nothing aborted
	my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
	unlike($log, qr/terminated by signal|TRAP:|pfree called with invalid pointer|server process .* was terminated/,
		"$mode: no backend crashed, nothing freed the wrong way");
	$node->stop;
}

done_testing();
