\i test/setup.sql
--
-- forwarded: the client address pre_request takes from X-Forwarded-For and
-- Forwarded (apikeys.trust_forwarded_for, apikeys.trusted_proxies), and the
-- address forms every check normalises (IPv4-mapped and -compatible IPv6).
-- Every request here presents a valid key, so nothing counts as a failure.
--
SET client_min_messages = warning;
SET ROLE regress_admin;
SELECT (k).token AS k_net
  FROM apikeys.create_key('fwd-owner', 'office', ARRAY['docs:read'],
                          allowed_cidrs => '{203.0.113.0/24}') k \gset
SELECT (k).token AS k_ten
  FROM apikeys.create_key('fwd-owner', 'ten', ARRAY['docs:read'],
                          allowed_cidrs => '{10.0.0.0/8}') k \gset
SELECT (k).token AS k_v6
  FROM apikeys.create_key('fwd-owner', 'six', ARRAY['docs:read'],
                          allowed_cidrs => '{2001:db8:77::/48}') k \gset
SELECT (k).token AS k_mapped
  FROM apikeys.create_key('fwd-owner', 'mapped cidr', ARRAY['docs:read'],
                          allowed_cidrs => '{::ffff:10.0.0.0/104}') k \gset
RESET ROLE;
RESET client_min_messages;

-- try(key, headers): what pre_request answers: "ok", or the HTTP status
-- and code PostgREST would send.
CREATE FUNCTION fwd_try(tok text, headers jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text; d text;
BEGIN
    PERFORM set_config('request.headers',
                       (CASE WHEN tok IS NULL THEN headers
                             ELSE headers || jsonb_build_object('x-api-key', tok) END)::text, true);
    PERFORM apikeys.pre_request();
    RETURN CASE WHEN tok IS NULL THEN 'anonymous' ELSE 'ok' END;
EXCEPTION WHEN SQLSTATE 'PGRST' THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN (d::jsonb ->> 'status') || ' ' || (m::jsonb ->> 'code');
END
$$;

-- Not trusted (the default): the headers are ignored.  Over this unix
-- socket no address is known, so the restricted key fails closed, and
-- junk in the header is not looked at.
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5"}') AS untrusted_xff,
       fwd_try(:'k_net', '{"forwarded": "for=_junk"}') AS untrusted_junk;

SET apikeys.trust_forwarded_for = on;

-- The appending-proxy attack: the client sends X-Forwarded-For:
-- 203.0.113.5, the proxy appends the address it saw.  The rightmost entry
-- is the client; the forged left entry is never read.
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 198.51.100.20"}') AS forged_first,
       fwd_try(:'k_net', '{"x-forwarded-for": "198.51.100.20, 203.0.113.5"}') AS real_last,
       fwd_try(:'k_net', '{"x-forwarded-for": "junk, 203.0.113.5"}') AS junk_left_unread;

-- Trusted proxies are skipped from the right; when all are trusted, the
-- leftmost counts.
SET apikeys.trusted_proxies = '198.51.100.0/24, 2001:db8:ff::/48';
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 198.51.100.20"}') AS behind_proxy,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 198.51.100.1, 2001:db8:ff::9"}') AS two_proxies,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 192.0.2.1, 198.51.100.20"}') AS forged_before_client,
       fwd_try(:'k_net', '{"x-forwarded-for": "198.51.100.3, 198.51.100.20"}') AS all_trusted;
RESET apikeys.trusted_proxies;

-- Node forms: ip:port, bare IPv6, [v6], [v6]:port.
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5:4711"}') AS v4_port,
       fwd_try(:'k_v6', '{"x-forwarded-for": "2001:db8:77::1"}') AS v6,
       fwd_try(:'k_v6', '{"x-forwarded-for": "[2001:db8:77::1]"}') AS v6_brackets,
       fwd_try(:'k_v6', '{"x-forwarded-for": "[2001:db8:77::1]:443"}') AS v6_port,
       fwd_try(:'k_v6', '{"x-forwarded-for": "[2001:db8:78::1]:443"}') AS v6_outside;

-- IPv4-mapped and -compatible addresses are their IPv4 address, for a
-- key's allowed_cidrs in both directions.
SELECT fwd_try(:'k_ten', '{"x-forwarded-for": "::ffff:10.1.2.3"}') AS mapped,
       fwd_try(:'k_ten', '{"x-forwarded-for": "[::ffff:10.1.2.3]:80"}') AS mapped_port,
       fwd_try(:'k_ten', '{"x-forwarded-for": "::10.1.2.3"}') AS compatible,
       fwd_try(:'k_ten', '{"x-forwarded-for": "::ffff:11.1.2.3"}') AS mapped_outside,
       fwd_try(:'k_mapped', '{"x-forwarded-for": "10.1.2.3"}') AS mapped_cidr;

-- RFC 7239 Forwarded: for= in any case, quoted or not, with other
-- parameters; the rightmost element.
SELECT fwd_try(:'k_net', '{"forwarded": "for=203.0.113.5"}') AS plain,
       fwd_try(:'k_net', '{"forwarded": "For=\"203.0.113.5:4711\";proto=https;by=198.51.100.1"}') AS quoted_port,
       fwd_try(:'k_v6', '{"forwarded": "for=\"[2001:db8:77::1]:4711\""}') AS quoted_v6,
       fwd_try(:'k_net', '{"forwarded": "for=203.0.113.5, for=198.51.100.20"}') AS forged_first,
       fwd_try(:'k_net', '{"forwarded": "for=\"x, y\";proto=http, for=203.0.113.5"}') AS comma_in_quotes_left;

-- Invalid input: a forwarding header whose client entry is not an address
-- answers 400 (never "no address, so no throttling", and never the
-- proxy's own address, which a key's allowed_cidrs may admit).
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "unknown"}') AS xff_unknown,
       fwd_try(:'k_net', '{"x-forwarded-for": ""}') AS xff_empty,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5,"}') AS xff_trailing_comma,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.0/24"}') AS xff_prefix,
       fwd_try(:'k_net', '{"x-forwarded-for": "10.1"}') AS xff_shorthand,
       fwd_try(:'k_net', '{"x-forwarded-for": "proxy.example"}') AS xff_name,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5:http"}') AS xff_bad_port,
       fwd_try(:'k_net', '{"x-forwarded-for": "[203.0.113.5]"}') AS xff_v4_brackets,
       fwd_try(:'k_net', '{"x-forwarded-for": ["203.0.113.5"]}') AS xff_not_a_string;
SELECT fwd_try(:'k_net', '{"forwarded": "for=unknown"}') AS fwd_unknown,
       fwd_try(:'k_net', '{"forwarded": "for=_hidden"}') AS fwd_obfuscated,
       fwd_try(:'k_net', '{"forwarded": "proto=https"}') AS fwd_no_for,
       fwd_try(:'k_net', '{"forwarded": "for=203.0.113.5;for=203.0.113.6"}') AS fwd_two_for,
       fwd_try(:'k_net', '{"forwarded": "for=\"203.0.113.5"}') AS fwd_unterminated,
       fwd_try(:'k_net', '{"forwarded": "for"}') AS fwd_no_value;
-- Header names in other cases are the same header; the same header
-- twice, or both headers, cannot say which part a proxy wrote: 400.
SELECT fwd_try(:'k_net', '{"X-FORWARDED-FOR": "203.0.113.5"}') AS upper_case,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5", "X-Forwarded-For": "203.0.113.5"}') AS twice,
       fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5", "forwarded": "for=203.0.113.5"}') AS both;
-- The address only matters to a presented key: anonymous stays anonymous.
SELECT fwd_try(NULL, '{"x-forwarded-for": "unknown"}') AS anonymous_junk;

-- verify() normalises its client_ip argument the same way.
SELECT (apikeys.verify(:'k_ten', NULL, '::ffff:10.1.2.3')).code AS mapped,
       (apikeys.verify(:'k_ten', NULL, '::10.1.2.3')).code AS compatible,
       (apikeys.verify(:'k_ten', NULL, '::1')).code AS loopback,
       (apikeys.verify(:'k_mapped', NULL, '10.200.0.1')).code AS v4_in_mapped_cidr,
       (apikeys.verify(:'k_mapped', NULL, '11.0.0.1')).code AS v4_outside;

-- Invalid input: apikeys.trusted_proxies takes addresses and CIDR
-- networks only, and only from a superuser.
SELECT err($$SET apikeys.trusted_proxies = '10.0.0.0/33'$$) AS too_long;
SELECT err($$SET apikeys.trusted_proxies = '10.0.0.1/8'$$) AS host_bits;
SELECT err($$SET apikeys.trusted_proxies = '10.0.0.0/8, proxy.example'$$) AS name;
SELECT err($$SET apikeys.trusted_proxies = '10/8'$$) AS classful;
SET apikeys.trusted_proxies = '10.0.0.0/8,2001:db8::/32 ::ffff:192.168.0.0/112';
SHOW apikeys.trusted_proxies;
SELECT set_config('apikeys.trusted_proxies', E'192.0.2.1\t192.0.2.2\t192.0.2.3\t192.0.2.4', false) IS NOT NULL AS tabs_separate;
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 192.0.2.4, 192.0.2.1"}') AS tab_list_entries;
SET apikeys.trusted_proxies = '10.0.0.0/8,2001:db8::/32 ::ffff:192.168.0.0/112';
SELECT fwd_try(:'k_net', '{"x-forwarded-for": "203.0.113.5, 192.168.3.4, 10.9.9.9"}') AS mapped_proxy_entry;
RESET apikeys.trusted_proxies;
SET ROLE regress_admin;
SELECT err($$SET apikeys.trusted_proxies = '10.0.0.0/8'$$) AS not_superuser;
RESET ROLE;

RESET apikeys.trust_forwarded_for;
DROP FUNCTION fwd_try(text, jsonb);
