#ifndef KVMHA_CLIBNFS_SHIM_H
#define KVMHA_CLIBNFS_SHIM_H
// libnfs.h uses struct timeval and friends without including their headers.
#include <sys/time.h>
#include <sys/types.h>
#include <stdint.h>
#include <nfsc/libnfs.h>
// The raw RPC API (NFSv3 LOOKUP and READ with several calls in flight), for NFSContext's batch read.
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>
#endif
