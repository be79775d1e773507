/*-------------------------------------------------------------------------
 *
 * catalog.h
 *	  Cached OIDs of the extension's tables and the layout of apikeys.keys.
 *
 * IDENTIFICATION
 *	  src/catalog.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_CATALOG_H
#define APIKEYS_CATALOG_H

#include "apikeys.h"
#include "access/skey.h"
#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* Column numbers of apikeys.keys, checked against the catalog on load. */
#define Anum_keys_client_id			1
#define Anum_keys_owner				2
#define Anum_keys_name				3
#define Anum_keys_scopes			4
#define Anum_keys_secret_hash		5
#define Anum_keys_hash_alg			6
#define Anum_keys_expires_at		7
#define Anum_keys_created_at		8
#define Anum_keys_created_by		9
#define Anum_keys_disabled_at		10
#define Anum_keys_revoked_at		11
#define Anum_keys_prev_secret_hash	12
#define Anum_keys_prev_hash_alg		13
#define Anum_keys_prev_expires_at	14
#define Anum_keys_last_used_at		15
#define Anum_keys_description		16
#define Anum_keys_contact_email		17
#define Anum_keys_contact_phone		18
#define Anum_keys_allowed_cidrs		19
#define Anum_keys_metadata			20
#define Anum_keys_db_role			21
#define Anum_keys_rate_limit		22
#define Anum_keys_rate_window		23
#define Natts_keys					23

/*
 * The credit columns (1.1), found by name when the table is first read:
 * a 1.0 table has none (ApikeysKeysCreditColumns returns NULL).
 */
#define KEYS_CREDITS				0	/* credits bigint */
#define KEYS_REFILL_AMOUNT			1	/* refill_amount bigint */
#define KEYS_REFILL_EVERY			2	/* refill_every interval */
#define KEYS_CREDITS_AT				3	/* credits_refilled_at timestamptz */
#define KEYS_CREDITS_SEQ			4	/* credits_seq bigint */
#define KEYS_CREDITS_ADDED			5	/* credits_added bigint */
#define KEYS_CREDIT_COLUMNS			6

/* What identifies this database's apikeys.keys (see ApikeysKeysIdentity). */
typedef struct ApikeysKeysId
{
	Oid			dbid;
	TransactionId dbxmin;
	Oid			relid;
	Oid			relfilenode;
} ApikeysKeysId;

extern Oid	ApikeysKeysRelid(void);
extern const AttrNumber *ApikeysKeysCreditColumns(void);
extern void ApikeysKeysIdentity(ApikeysKeysId *id);
extern Oid	ApikeysExtensionOwner(void);

/* The caller's identity, saved by ApikeysBecomeOwner for ApikeysRestoreUser. */
typedef struct ApikeysSavedUser
{
	Oid			userid;
	int			sec_context;
} ApikeysSavedUser;

extern void ApikeysBecomeOwner(ApikeysSavedUser *saved);
extern void ApikeysRestoreUser(const ApikeysSavedUser *saved);

/* Work that ApikeysRunAsOwner runs as the extension owner, SPI connected. */
typedef void (*ApikeysOwnerWork) (void *arg);

extern bool ApikeysRunAsOwner(ApikeysOwnerWork work, void *arg);

/*
 * Rows of one of the extension's tables read by its one-column text
 * primary key, with the latest snapshot (see PkScanBegin in catalog.c).
 */
typedef struct PkScan
{
	Relation	rel;
	Relation	idx;
	Snapshot	snapshot;
	TupleTableSlot *slot;
} PkScan;

extern void PkScanBegin(PkScan *ps, Oid relid, bool locked);
extern TupleTableSlot *PkScanFetch(PkScan *ps, const char *key, int len);
extern void PkScanEnd(PkScan *ps);
extern void IndexScanOpen(PkScan *ps, Oid relid, Oid idxoid);
extern void ApikeysLockForRead(Oid relid);
extern int	LookupLockTimeoutBegin(void);
extern void LookupLockTimeoutEnd(int nest);
extern TupleTableSlot *IndexScanFetch(PkScan *ps, ScanKey keys, int nkeys);

#endif							/* APIKEYS_CATALOG_H */
