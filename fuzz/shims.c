/*-------------------------------------------------------------------------
 *
 * shims.c
 *	  Backend symbols that src/token.c and src/scope.c reference but the
 *	  fuzz targets never reach.
 *
 * The parsers are pure string code, but their files also hold SQL-callable
 * functions and ereport() calls, which pull in backend symbols.  The fuzz
 * targets link token.c and scope.c against PostgreSQL's frontend static
 * libraries (libpgcommon for palloc and StringInfo, libpgport for CRC-32C
 * and pg_strong_random) and these stubs.  Each stub aborts: reaching one
 * means the target called code it does not mean to test, which the fuzzer
 * then reports as a crash rather than silently passing.
 *
 * IDENTIFICATION
 *	  fuzz/shims.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

static void
unreachable(const char *what)
{
	fprintf(stderr, "fuzz shim: %s reached; the fuzz target must not call it\n", what);
	abort();
}

bool
errstart_cold(int elevel, const char *domain)
{
	unreachable("ereport");
	return false;
}

bool
errstart(int elevel, const char *domain)
{
	unreachable("ereport");
	return false;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	unreachable("errfinish");
}

int
errcode(int sqlerrcode)
{
	unreachable("errcode");
	return 0;
}

int
errmsg(const char *fmt,...)
{
	unreachable("errmsg");
	return 0;
}

int
errdetail(const char *fmt,...)
{
	unreachable("errdetail");
	return 0;
}

text *
cstring_to_text_with_len(const char *s, int len)
{
	unreachable("cstring_to_text_with_len");
	return NULL;
}

char *
text_to_cstring(const text *t)
{
	unreachable("text_to_cstring");
	return NULL;
}

void
deconstruct_array(ArrayType *array, Oid elmtype, int elmlen, bool elmbyval,
				  char elmalign, Datum **elemsp, bool **nullsp, int *nelemsp)
{
	unreachable("deconstruct_array");
}

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	unreachable("pg_detoast_datum");
	return NULL;
}

struct varlena *
pg_detoast_datum_packed(struct varlena *datum)
{
	unreachable("pg_detoast_datum_packed");
	return NULL;
}
