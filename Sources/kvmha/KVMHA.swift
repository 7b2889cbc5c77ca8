import ArgumentParser

@main
struct KVMHA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvmha",
        abstract: "High-availability sidecar for Apache CloudStack KVM hosts.",
        discussion: """
            Writes heartbeats to every shared NFS primary-storage pool (CloudStack's hb-<ip> file and a richer \
            record), judges peers by whether their records change, and answers whether a host is alive.

            Exit codes of the checking commands: 0 alive/ok, 1 dead, 2 unknown, 64 and above usage or \
            connection errors.
            """,
        version: KVMHAVersion.current,
        subcommands: [Serve.self, Status.self, CheckHost.self, Peers.self, ActivityCommand.self, Vms.self, Cluster.self, CloudStackCommand.self, Maintenance.self]
    )
}

enum KVMHAVersion {
    static let current = "0.1.0"
}

/// Exit codes scripts can rely on.
enum ExitStatus {
    static let alive: Int32 = 0
    static let dead: Int32 = 1
    static let unknown: Int32 = 2
    static let usage: Int32 = 64
    static let unavailable: Int32 = 69
    static let config: Int32 = 78
}
