/*-------------------------------------------------------------------------
 *
 * token_checksum.c
 *	  Benchmark helper: appends the token checksum to token bodies.
 *
 * A token ends in the CRC-32C of everything before it, written as 6 base62
 * digits (src/token.c).  SQL cannot compute CRC-32C on PostgreSQL 15, and a
 * PL/pgSQL or Perl loop over a million 63-byte bodies takes 20 s or more,
 * so bench/run.sh compiles this filter and pipes COPY output through it to
 * build bench.tokens.  It is deliberately independent of the extension's
 * C code: if the two disagreed, every token would answer MALFORMED and the
 * runner's correctness checks would stop the run.
 *
 * Input lines:  <id> TAB <client id>_<43-char secret>
 * Output lines: <id> TAB <client id>_<43-char secret><6-char checksum>
 *
 * IDENTIFICATION
 *	  bench/token_checksum.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char base62_digits[] =
"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static uint32_t crc_table[256];

/* InitTable fills the table of the reflected Castagnoli polynomial. */
static void
InitTable(void)
{
	for (uint32_t n = 0; n < 256; n++)
	{
		uint32_t	c = n;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		crc_table[n] = c;
	}
}

/* Crc32c is CRC-32C as PostgreSQL's INIT/COMP/FIN_CRC32C compute it. */
static uint32_t
Crc32c(const char *s, size_t len)
{
	uint32_t	c = 0xFFFFFFFFu;

	for (size_t i = 0; i < len; i++)
		c = crc_table[(c ^ (unsigned char) s[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

/* main copies each line, appending the checksum of the text after the tab. */
int
main(void)
{
	char		line[1024];

	InitTable();
	while (fgets(line, sizeof(line), stdin) != NULL)
	{
		size_t		len = strcspn(line, "\r\n");
		char	   *tab = memchr(line, '\t', len);
		char		sum[7];
		uint64_t	v;

		if (tab == NULL)
		{
			fprintf(stderr, "token_checksum: line without a tab\n");
			return 1;
		}
		v = Crc32c(tab + 1, len - (size_t) (tab + 1 - line));
		for (int i = 5; i >= 0; i--)
		{
			sum[i] = base62_digits[v % 62];
			v /= 62;
		}
		sum[6] = '\0';
		line[len] = '\0';
		if (printf("%s%s\n", line, sum) < 0)
			return 1;
	}
	return ferror(stdin) ? 1 : 0;
}
