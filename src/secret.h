/*-------------------------------------------------------------------------
 *
 * secret.h
 *	  Secret generation, hashing and constant-time comparison.
 *
 * IDENTIFICATION
 *	  src/secret.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef APIKEYS_SECRET_H
#define APIKEYS_SECRET_H

#include "apikeys.h"

extern char SecretCurrentHashAlg(void);
extern bool SecretHash(const char *secret, size_t len, char alg, uint8 *out);
extern bool SecretHashEqual(const uint8 *a, const uint8 *b);

#endif							/* APIKEYS_SECRET_H */
