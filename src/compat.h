/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every difference between the PostgreSQL majors apikeys builds on.
 *
 * apikeys supports PostgreSQL 15 and later.  Each server API that changed
 * between the supported majors gets one name here, defined once per
 * version, and the rest of src/ calls only that name: this is the one file
 * of src/ that tests PG_VERSION_NUM, so a new major is ported here and
 * nowhere else.  What changed, and since when:
 *
 *	16	RelFileNode became RelFileLocator (storage/relfilelocator.h): a
 *		relation's rd_node is rd_locator, relNode is relNumber.
 *	16	GUC string values and "extra" data live in a GUC memory context:
 *		a check hook that replaces *newval, or sets *extra, must allocate
 *		with guc_malloc/guc_strdup and free with guc_free (pfree of a
 *		malloc'd pointer aborts the backend).  15 uses malloc and free.
 *	18	RelationGetPrimaryKeyIndex takes deferrable_ok (we want only a
 *		plain, immediately checked primary key: false).
 *	18	index_beginscan takes an IndexScanInstrumentation (we pass NULL).
 *	18	pg_attribute_noreturn() (after the declarator) is gone; pg_noreturn
 *		goes before the declaration.
 *	18	pg_b64_decode writes to uint8 *, not char *.
 *	19	index_beginscan takes the table-scan flags (ScanOptions; we pass
 *		SO_NONE, as PostgreSQL's own catalog and constraint lookups do).
 *	19	ShmemInitHash takes one number of entries (every shared hash table
 *		is allocated whole, at its maximum) instead of an initial and a
 *		maximum size.
 *	19	Server headers include fewer others: a file that calls
 *		tuplestore_putvalues includes utils/tuplestore.h, one that calls
 *		heap_form_tuple access/htup_details.h (harmless on every major,
 *		so those are plain #includes where they are used, not here).
 *
 * IDENTIFICATION
 *	  src/compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_COMPAT_H
#define APIKEYS_COMPAT_H

#include "access/genam.h"
#include "access/tableam.h"
#include "common/base64.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#if PG_VERSION_NUM < 150000
#error "apikeys requires PostgreSQL 15 or later"
#endif

/*
 * ApikeysRelFile is the physical identity of a relation's storage (used to
 * read a block on a standby); ApikeysRelationFile(rel) is that of rel, and
 * ApikeysRelFileNumber(rel) its relfilenode number.
 */
#if PG_VERSION_NUM >= 160000
#include "storage/relfilelocator.h"
typedef RelFileLocator ApikeysRelFile;

#define ApikeysRelationFile(rel) ((rel)->rd_locator)
#define ApikeysRelFileNumber(rel) ((rel)->rd_locator.relNumber)
#else
#include "storage/relfilenode.h"
typedef RelFileNode ApikeysRelFile;

#define ApikeysRelationFile(rel) ((rel)->rd_node)
#define ApikeysRelFileNumber(rel) ((rel)->rd_node.relNode)
#endif

/*
 * GUC memory: what a check hook stores in *newval or *extra, PostgreSQL
 * frees when the value is replaced, so it must come from the allocator the
 * server frees with.  Each returns NULL when out of memory (after logging
 * it on 16+); the hook then fails with GUC_check_errcode.
 */
#if PG_VERSION_NUM >= 160000
#define ApikeysGucMalloc(size) guc_malloc(LOG, (size))
#define ApikeysGucStrdup(s) guc_strdup(LOG, (s))
#define ApikeysGucFree(p) guc_free(p)
#else
#define ApikeysGucMalloc(size) malloc(size)
#define ApikeysGucStrdup(s) strdup(s)
#define ApikeysGucFree(p) free(p)
#endif

/* the table's primary key index, which must not be deferrable */
#if PG_VERSION_NUM >= 180000
#define ApikeysPrimaryKeyIndex(rel) RelationGetPrimaryKeyIndex((rel), false)
#else
#define ApikeysPrimaryKeyIndex(rel) RelationGetPrimaryKeyIndex(rel)
#endif

/*
 * an index scan with nkeys scan keys, no ORDER BY keys, no instrumentation
 * and no table-scan options
 */
#if PG_VERSION_NUM >= 190000
#define ApikeysIndexBeginScan(heap, index, snapshot, nkeys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), 0, SO_NONE)
#elif PG_VERSION_NUM >= 180000
#define ApikeysIndexBeginScan(heap, index, snapshot, nkeys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), 0)
#else
#define ApikeysIndexBeginScan(heap, index, snapshot, nkeys) \
	index_beginscan((heap), (index), (snapshot), (nkeys), 0)
#endif

/*
 * A shared hash table of at most nelems entries, all allocated at start
 * (hash_flags should include HASH_FIXED_SIZE; 19 implies it)
 */
#if PG_VERSION_NUM >= 190000
#define ApikeysShmemInitHash(name, nelems, info, hash_flags) \
	ShmemInitHash((name), (nelems), (info), (hash_flags))
#else
#define ApikeysShmemInitHash(name, nelems, info, hash_flags) \
	ShmemInitHash((name), (nelems), (nelems), (info), (hash_flags))
#endif

/*
 * A function that never returns: write "pg_noreturn" before the
 * declaration (18's form; before 18 the same attribute as a prefix).
 */
#if PG_VERSION_NUM < 180000 && !defined(pg_noreturn)
#define pg_noreturn pg_attribute_noreturn()
#endif

/* base64 decoding into a byte buffer */
#if PG_VERSION_NUM >= 180000
#define ApikeysB64Decode(src, len, dst, dstlen) \
	pg_b64_decode((src), (len), (uint8 *) (dst), (dstlen))
#else
#define ApikeysB64Decode(src, len, dst, dstlen) \
	pg_b64_decode((src), (len), (char *) (dst), (dstlen))
#endif

#endif							/* APIKEYS_COMPAT_H */
