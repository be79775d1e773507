/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  The readiness flag of the extension's shared memory.
 *
 * A leaf: it includes and calls nothing of the extension's.  The hooks
 * that request and attach shared memory are in apikeys.c, which calls
 * each module's XxxShmemRequest and XxxShmemInit and then sets this flag;
 * the modules read it (ApikeysSharedReady, shmem.h) without calling back
 * up to the file that set them up.
 *
 * IDENTIFICATION
 *	  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "shmem.h"

bool		apikeys_shmem_ready = false;
