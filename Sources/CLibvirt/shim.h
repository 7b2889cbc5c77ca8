#ifndef KVMHA_CLIBVIRT_SHIM_H
#define KVMHA_CLIBVIRT_SHIM_H
#include <stddef.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

/* Why: registering a lifecycle callback needs VIR_DOMAIN_EVENT_CALLBACK, a function-pointer cast macro
   that Swift does not import. */
static inline int kvmha_virConnectDomainEventRegisterLifecycle(virConnectPtr conn,
                                                               virConnectDomainEventCallback callback,
                                                               void *opaque,
                                                               virFreeCallback freeCallback) {
    return virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                            VIR_DOMAIN_EVENT_CALLBACK(callback), opaque, freeCallback);
}

#endif
