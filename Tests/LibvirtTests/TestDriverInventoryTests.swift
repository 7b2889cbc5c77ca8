import Foundation
import Libvirt
import Testing

/// Inventory and pool discovery against libvirt's in-process test driver, with the suite's own node
/// (Tests/Harness/libvirt/node.xml).
@Suite("Test driver: inventory and pools")
struct TestDriverInventoryTests {
    static let uri = HarnessFiles.nodeURI

    /// Exactly what node.xml describes, sorted by name. The test driver numbers active domains in file order
    /// and sets every reason to 0 ("unknown").
    static let expectedDomains: [DomainInfo] = [
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a01",
            name: "i-2-10-VM",
            id: 1,
            state: .running,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a02",
            name: "i-2-11-VM",
            id: 2,
            state: .blocked,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a03",
            name: "i-3-12-VM",
            id: 3,
            state: .paused,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a05",
            name: "i-3-13-VM",
            id: nil,
            state: .shutoff,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a04",
            name: "r-4-VM",
            id: 4,
            state: .shuttingDown,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a06",
            name: "s-1-VM",
            id: 5,
            state: .crashed,
            reason: "unknown"
        ),
        DomainInfo(
            uuid: "6f0c2a7e-3b41-4d2a-9a51-0b6c1e2f3a07",
            name: "v-2-VM",
            id: 6,
            state: .pmsuspended,
            reason: "unknown"
        ),
    ]

    static let expectedPools: [StoragePoolInfo] = [
        StoragePoolInfo(
            name: "8e9d1b3a-4c2f-3a6e-8d7c-1f2e3a4b5c62",
            uuid: "8e9d1b3a-4c2f-3a6e-8d7c-1f2e3a4b5c62",
            type: "netfs",
            sourceHost: "nfs2.example.org",
            sourceDir: "/export/primary2",
            targetPath: "/mnt/8e9d1b3a-4c2f-3a6e-8d7c-1f2e3a4b5c62",
            active: true
        ),
        StoragePoolInfo(
            name: "c2a5e0f4-7d6b-3e48-9b1f-5a0d2c3e4f51",
            uuid: "c2a5e0f4-7d6b-3e48-9b1f-5a0d2c3e4f51",
            type: "netfs",
            sourceHost: "10.0.32.4",
            sourceDir: "/export/primary1",
            targetPath: "/mnt/c2a5e0f4-7d6b-3e48-9b1f-5a0d2c3e4f51",
            active: true
        ),
        StoragePoolInfo(
            name: "local-images",
            uuid: "3d1f6b2e-9c4a-4e7d-8b5f-2a6c9e0d1f73",
            type: "dir",
            sourceHost: nil,
            sourceDir: nil,
            targetPath: "/var/lib/libvirt/images",
            active: true
        ),
    ]

    @Test("domains() lists every domain with its exact id, state and reason")
    func inventoryIsExact() throws {
        let connection = try LibvirtConnection(uri: Self.uri)
        defer { connection.close() }
        #expect(try connection.domains() == Self.expectedDomains)
        #expect(Set(DomainState.allCases) == Set(Self.expectedDomains.map(\.state)).union([.noState]))
    }

    @Test("domain(uuid:) finds each domain and answers nil for an unknown UUID")
    func lookupByUUID() throws {
        let connection = try LibvirtConnection(uri: Self.uri)
        defer { connection.close() }
        for expected in Self.expectedDomains {
            #expect(try connection.domain(uuid: expected.uuid) == expected)
        }
        #expect(try connection.domain(uuid: "00000000-0000-4000-8000-000000000000") == nil)
    }

    @Test("storagePools() reads type, NFS source, target path and state of every pool")
    func poolsAreExact() throws {
        let connection = try LibvirtConnection(uri: Self.uri)
        defer { connection.close() }
        #expect(try connection.storagePools() == Self.expectedPools)
    }

    @Test("domains() agrees with `virsh list --all` on the same URI, domain by domain")
    func domainsAgreeWithVirsh() async throws {
        let connection = try LibvirtConnection(uri: Self.uri)
        defer { connection.close() }
        let ours = try connection.domains()

        // ` 1   i-2-10-VM   running` / ` -   i-3-13-VM   shut off`
        var virshStates: [String: (id: String, state: String)] = [:]
        for line in try await virsh(Self.uri, "list", "--all").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count >= 3 else { continue }
            virshStates[fields[1]] = (fields[0], fields[2...].joined(separator: " "))
        }
        // `6f0c2a7e-… 1 i-2-10-VM`
        var virshUUIDs: [String: String] = [:]
        for line in try await virsh(Self.uri, "list", "--all", "--uuid", "--id", "--name").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard fields.count == 3 else { continue }
            virshUUIDs[fields[2]] = fields[0]
        }

        #expect(Set(virshStates.keys) == Set(ours.map(\.name)))
        #expect(Set(virshUUIDs.keys) == Set(ours.map(\.name)))
        for domain in ours {
            let row = virshStates[domain.name]
            #expect(row?.id == domain.id.map(String.init) ?? "-", "id of \(domain.name)")
            #expect(row?.state == domain.state.virshName, "state of \(domain.name)")
            #expect(virshUUIDs[domain.name] == domain.uuid, "uuid of \(domain.name)")
        }
    }

    @Test("a connection is alive until closed; close() is idempotent; calls after it fail clearly")
    func closeIsIdempotent() throws {
        let connection = try LibvirtConnection(uri: Self.uri)
        #expect(connection.isAlive)
        connection.close()
        connection.close()
        #expect(!connection.isAlive)
        let error = #expect(throws: LibvirtError.self) { try connection.domains() }
        #expect(error?.code == 6)  // VIR_ERR_INVALID_CONN
        #expect(error?.message.contains("closed") == true)
    }

    @Test("opening a bad URI fails with libvirt's own message")
    func badURIFailsWithLibvirtsMessage() throws {
        let missing = "test:///nonexistent/kvmha/node.xml"
        let error = #expect(throws: LibvirtError.self) { try LibvirtConnection(uri: missing) }
        #expect(error?.operation == "open \(missing)")
        #expect(error?.message.contains("/nonexistent/kvmha/node.xml") == true, "\(String(describing: error))")
        #expect(error?.description.hasPrefix("libvirt: open \(missing): ") == true)
    }

    @Test("two connections to the same node file are independent")
    func connectionsAreIndependent() throws {
        let first = try LibvirtConnection(uri: Self.uri)
        let second = try LibvirtConnection(uri: Self.uri)
        first.close()
        #expect(try second.domains() == Self.expectedDomains)
        second.close()
    }
}

extension DomainState {
    /// The state column of `virsh list`.
    var virshName: String {
        switch self {
        case .noState: "no state"
        case .running: "running"
        case .blocked: "idle"
        case .paused: "paused"
        case .shuttingDown: "in shutdown"
        case .shutoff: "shut off"
        case .crashed: "crashed"
        case .pmsuspended: "pmsuspended"
        }
    }
}
