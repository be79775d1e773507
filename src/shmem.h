/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  Is this process attached to the extension's shared memory?  The one
 *	  readiness test, and nothing else: a leaf every module may include.
 *
 * Each shared structure is owned by its file: the file defines it, asks
 * for its size and its own LWLock tranche in its XxxShmemRequest, and
 * creates or attaches it in its XxxShmemInit.  apikeys.c's hooks call
 * those functions (and nothing here calls back up): see apikeys.c.
 *
 * IDENTIFICATION
 *	  src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_SHMEM_H
#define APIKEYS_SHMEM_H

#include "apikeys.h"

/*
 * Set by apikeys.c's shared-memory start-up hook, after every module's
 * XxxShmemInit has run; read it through ApikeysSharedReady().
 */
extern bool apikeys_shmem_ready;

/*
 * ApikeysSharedReady: is this process attached to the extension's shared
 * memory (the library was preloaded and the start-up hook has run)?  The
 * one readiness test: every shared structure is set up before it turns
 * true, so no module needs to test its own pointers too.
 */
static inline bool
ApikeysSharedReady(void)
{
	return apikeys_shmem_ready;
}

#endif							/* APIKEYS_SHMEM_H */
